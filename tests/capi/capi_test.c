/* The C API's tests, in C99: the happy path, every error path, a LoRA apply/undo round trip
 * compared byte for byte, and callbacks that cancel. Usage: capi_test WRITE_FIXTURES_EXE.
 * Each run makes its own temporary directory, has write_fixtures fill it, and removes it. */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weightmap/weightmap.h"

static int checks_failed = 0;
static int checks_passed = 0;
static char fixture_dir[256];
static uint32_t parsed_flags;

#define CHECK(condition)                                                            \
  do {                                                                              \
    if (condition) {                                                                \
      ++checks_passed;                                                              \
    } else {                                                                        \
      ++checks_failed;                                                              \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #condition); \
    }                                                                               \
  } while (0)

/* A call expected to succeed; prints the last error when it does not. */
#define CHECK_OK(call)                                                         \
  do {                                                                         \
    weightmap_status status_ = (call);                                         \
    if (status_ == WEIGHTMAP_OK) {                                             \
      ++checks_passed;                                                         \
    } else {                                                                   \
      ++checks_failed;                                                         \
      fprintf(stderr, "%s:%d: %s failed: %s: %s\n", __FILE__, __LINE__, #call, \
              weightmap_status_name(status_), weightmap_last_error());         \
    }                                                                          \
  } while (0)

#define CHECK_STATUS(expected, call) CHECK((call) == (expected))

static int contains(const char* text, const char* part) {
  return text != NULL && strstr(text, part) != NULL;
}

static const char* fixture(const char* name) {
  static char path[512];
  snprintf(path, sizeof(path), "%s/%s", fixture_dir, name);
  return path;
}

/* What write_fixtures puts in element i of every model tensor, and of the LoRA factors. */
static float fixture_value(size_t i) { return (float)(i % 17) * 0.25f - 2.0f; }
static float lora_value(size_t i) { return (float)(i % 5) * 0.125f - 0.25f; }

static weightmap_model* open_one(const char* name) {
  const char* paths[1];
  weightmap_model* model = NULL;
  paths[0] = fixture(name);
  CHECK_OK(weightmap_open(paths, NULL, 1, &model));
  return model;
}

/* ---- the happy path ---------------------------------------------------------------------- */

static void test_open_and_describe(void) {
  weightmap_model* model = open_one("model.safetensors");
  size_t count = 0, index = 0, files = 0;
  weightmap_tensor_info info;
  const char* path = NULL;
  const char* format = NULL;
  uint64_t size = 0;
  if (model == NULL) return;

  CHECK_OK(weightmap_model_tensor_count(model, &count));
  CHECK(count == 3);
  CHECK_OK(weightmap_model_file_count(model, &files));
  CHECK(files == 1);
  CHECK_OK(weightmap_model_file(model, 0, &path, &format, &size));
  CHECK(contains(path, "model.safetensors"));
  CHECK(strcmp(format, "safetensors") == 0);
  CHECK(size > 0);

  CHECK_OK(weightmap_model_find_tensor(model, "b.weight", &index));
  memset(&info, 0, sizeof(info));
  info.struct_size = sizeof(info);
  CHECK_OK(weightmap_model_tensor_info(model, index, &info));
  CHECK(info.struct_size == sizeof(info));
  CHECK(strcmp(info.name, "b.weight") == 0);
  CHECK(strcmp(info.dtype_name, "f16") == 0);
  CHECK(info.dtype == 1);
  CHECK(info.n_dims == 2 && info.shape[0] == 8 && info.shape[1] == 4);
  CHECK(info.nbytes == 8 * 4 * 2);
  CHECK(info.offset > 8 && info.offset + info.nbytes <= size);
  CHECK(info.file == 0);
  CHECK(info.contiguous == 1);
  weightmap_model_free(model);
}

static void test_struct_size_smaller_than_the_struct_is_respected(void) {
  /* A caller compiled against a struct with only its first two fields gets those, and the
   * library writes nothing past them. */
  weightmap_model* model = open_one("model.safetensors");
  struct {
    weightmap_tensor_info info;
    unsigned char guard[sizeof(weightmap_tensor_info)];
  } buffer;
  size_t small = offsetof(weightmap_tensor_info, name) + sizeof(const char*);
  if (model == NULL) return;
  memset(&buffer, 0xAB, sizeof(buffer));
  buffer.info.struct_size = small;
  CHECK_OK(weightmap_model_tensor_info(model, 0, &buffer.info));
  CHECK(buffer.info.struct_size == small);
  CHECK(strcmp(buffer.info.name, "a.weight") == 0);
  CHECK(((unsigned char*)&buffer.info)[small] == 0xAB);
  weightmap_model_free(model);
}

static void test_metadata(void) {
  weightmap_model* safetensors = open_one("model.safetensors");
  weightmap_model* gguf = open_one("model.gguf");
  weightmap_metadata_value value;
  size_t count = 0;
  const char* key = NULL;
  if (safetensors == NULL || gguf == NULL) return;

  memset(&value, 0, sizeof(value));
  value.struct_size = sizeof(value);
  CHECK_OK(weightmap_model_metadata(safetensors, "title", &value));
  CHECK(value.type == WEIGHTMAP_METADATA_STRING);
  CHECK(value.string_length == 12 && strcmp(value.string, "capi fixture") == 0);

  CHECK_OK(weightmap_model_metadata(gguf, "capi.answer", &value));
  CHECK(value.type == WEIGHTMAP_METADATA_U32);
  CHECK(value.as_uint == 42 && value.as_int == 42 && value.as_double == 42.0);
  CHECK(value.string == NULL);
  CHECK_OK(weightmap_model_metadata(gguf, "capi.scale", &value));
  CHECK(value.type == WEIGHTMAP_METADATA_F32 && value.as_double == 0.5);
  CHECK_OK(weightmap_model_metadata(gguf, "capi.list", &value));
  CHECK(value.type == WEIGHTMAP_METADATA_ARRAY);
  CHECK(value.element_type == WEIGHTMAP_METADATA_I32);
  CHECK(value.array_count == 3);
  CHECK_OK(weightmap_model_metadata_element(gguf, "capi.list", 2, &value));
  CHECK(value.type == WEIGHTMAP_METADATA_I32 && value.as_int == 3);

  CHECK_OK(weightmap_model_metadata_count(gguf, &count));
  CHECK(count >= 4);
  CHECK_OK(weightmap_model_metadata_key(gguf, 0, &key));
  CHECK(key != NULL && key[0] != '\0');
  weightmap_model_free(safetensors);
  weightmap_model_free(gguf);
}

static int log_lines = 0;
static int log_saw_summary = 0;
static void count_log(void* user_data, weightmap_log_level level, const char* line) {
  (void)user_data;
  ++log_lines;
  if (level == WEIGHTMAP_LOG_INFO && contains(line, "memory-mapped")) log_saw_summary = 1;
}

static void test_load_everything_as_stored_maps_it(void) {
  weightmap_model* model = open_one("model.safetensors");
  weightmap_load* load = NULL;
  weightmap_load_options options;
  weightmap_tensor_data data;
  weightmap_load_report report;
  weightmap_tensor_info info;
  size_t count = 0, i = 0, index = 0;
  const float* values;
  if (model == NULL) return;

  options.struct_size = sizeof(options);
  CHECK_OK(weightmap_load_options_init(&options));
  CHECK(options.mode == WEIGHTMAP_LOAD_MODE_MMAP && options.workers == 2);
  options.log = count_log;
  options.cache_from_env = 0;
  CHECK_OK(weightmap_load_model(model, NULL, 0, &options, &load));
  if (load == NULL) goto done;
  CHECK(log_saw_summary);

  CHECK_OK(weightmap_load_tensor_count(load, &count));
  CHECK(count == 3);
  CHECK_OK(weightmap_load_find_tensor(load, "a.weight", &index));
  data.struct_size = sizeof(data);
  CHECK_OK(weightmap_load_tensor(load, index, &data));
  CHECK(data.mapped == 1);
  CHECK(data.reason == NULL && data.reason_sentence == NULL);
  CHECK(data.writable == NULL);
  CHECK(data.nbytes == 4 * 8 * 4);
  CHECK(strcmp(data.dtype_name, "f32") == 0 && data.n_dims == 2);
  values = (const float*)data.data;
  for (i = 0; i < 32; ++i) CHECK(values[i] == fixture_value(i));

  /* A mapped tensor's bytes are the file's: at the tensor's offset in the file. */
  info.struct_size = sizeof(info);
  CHECK_OK(weightmap_model_tensor_info(model, 0, &info));
  {
    FILE* file = fopen(fixture("model.safetensors"), "rb");
    unsigned char from_file[128];
    CHECK(file != NULL);
    if (file != NULL) {
      CHECK(fseek(file, (long)info.offset, SEEK_SET) == 0);
      CHECK(fread(from_file, 1, sizeof(from_file), file) == sizeof(from_file));
      CHECK(memcmp(from_file, data.data, sizeof(from_file)) == 0);
      fclose(file);
    }
  }

  report.struct_size = sizeof(report);
  CHECK_OK(weightmap_load_get_report(load, &report));
  CHECK(report.mapped_tensors == 3 && report.loaded_tensors == 0);
  CHECK(report.mapped_files == 1);
  CHECK(strcmp(report.mode, "mmap") == 0);
  CHECK(contains(report.summary, "memory-mapped 3 tensors in 1 files"));
  CHECK_OK(weightmap_load_reason_count(load, WEIGHTMAP_REASON_DTYPE_DIFFERS, &count));
  CHECK(count == 0);

  weightmap_load_free(load);
done:
  weightmap_model_free(model);
}

static void test_requests_convert_and_say_why(void) {
  weightmap_model* model = open_one("model.safetensors");
  weightmap_load* load = NULL;
  weightmap_request requests[2];
  weightmap_tensor_data data;
  weightmap_load_report report;
  size_t count = 0, i = 0;
  uint32_t f32 = 99;
  const float* values;
  if (model == NULL) return;

  CHECK_OK(weightmap_dtype_from_name("f32", &f32));
  CHECK(f32 == 0);
  requests[0].struct_size = sizeof(requests[0]);
  CHECK_OK(weightmap_request_init(&requests[0], "b.weight"));
  CHECK(requests[0].dtype == WEIGHTMAP_DTYPE_AS_STORED);
  requests[0].dtype = (int32_t)f32;
  requests[1].struct_size = sizeof(requests[1]);
  CHECK_OK(weightmap_request_init(&requests[1], "not.there"));
  requests[1].optional = 1;
  CHECK_OK(weightmap_load_model(model, requests, 2, NULL, &load));
  if (load == NULL) goto done;

  CHECK_OK(weightmap_load_tensor_count(load, &count));
  CHECK(count == 1); /* the optional absent tensor is left out */
  data.struct_size = sizeof(data);
  CHECK_OK(weightmap_load_tensor(load, 0, &data));
  CHECK(data.mapped == 0);
  CHECK(data.reason != NULL && strcmp(data.reason, "dtype_differs") == 0);
  CHECK(contains(data.reason_sentence, "converted"));
  CHECK(data.writable != NULL);
  CHECK(data.nbytes == 8 * 4 * 4);
  values = (const float*)data.data;
  for (i = 0; i < 32; ++i) CHECK(values[i] == fixture_value(i));

  report.struct_size = sizeof(report);
  CHECK_OK(weightmap_load_get_report(load, &report));
  CHECK(report.loaded_tensors == 1 && report.converted_tensors == 1);
  CHECK(report.missing_optional == 1);
  CHECK(report.unrequested_tensors == 2);
  CHECK_OK(weightmap_load_reason_count(load, WEIGHTMAP_REASON_DTYPE_DIFFERS, &count));
  CHECK(count == 1);
  weightmap_load_free(load);
done:
  weightmap_model_free(model);
}

static void test_tensor_handle_outlives_load_and_model(void) {
  weightmap_model* model = open_one("model.gguf");
  weightmap_load* load = NULL;
  weightmap_tensor* tensor = NULL;
  weightmap_tensor_data data;
  size_t index = 0;
  if (model == NULL) return;
  CHECK_OK(weightmap_load_model(model, NULL, 0, NULL, &load));
  if (load == NULL) goto done;
  CHECK_OK(weightmap_load_find_tensor(load, "c.bias", &index));
  CHECK_OK(weightmap_load_tensor_ref(load, index, &tensor));
  weightmap_load_free(load);
  weightmap_model_free(model);
  model = NULL;
  if (tensor == NULL) return;
  data.struct_size = sizeof(data);
  CHECK_OK(weightmap_tensor_data_get(tensor, &data));
  CHECK(strcmp(data.name, "c.bias") == 0 && strcmp(data.dtype_name, "bf16") == 0);
  CHECK(data.mapped == 1 && data.nbytes == 16);
  /* bf16 -2.0 is 0xC000; read the mapping after its load and model are gone. */
  CHECK(((const uint16_t*)data.data)[0] == 0xC000);
  weightmap_tensor_free(tensor);
done:
  weightmap_model_free(model);
}

static void test_release_a_component(void) {
  const char* paths[2];
  const char* prefixes[2];
  weightmap_model* model = NULL;
  weightmap_load* load = NULL;
  size_t count = 0, index = 0;
  paths[0] = fixture("model.safetensors");
  paths[1] = fixture("model.gguf");
  prefixes[0] = "te.";
  prefixes[1] = "vae.";
  CHECK_OK(weightmap_open(paths, prefixes, 2, &model));
  if (model == NULL) return;
  CHECK_OK(weightmap_model_tensor_count(model, &count));
  CHECK(count == 6);
  CHECK_OK(weightmap_load_model(model, NULL, 0, NULL, &load));
  if (load != NULL) {
    CHECK_OK(weightmap_load_release(load, "te."));
    CHECK_OK(weightmap_load_tensor_count(load, &count));
    CHECK(count == 3);
    CHECK_STATUS(WEIGHTMAP_ERROR_NOT_FOUND,
                 weightmap_load_find_tensor(load, "te.a.weight", &index));
    CHECK_OK(weightmap_load_find_tensor(load, "vae.a.weight", &index));
    weightmap_load_free(load);
  }
  weightmap_model_free(model);
}

static void test_version_names_and_policy(void) {
  uint32_t flags = 0;
  char text[64];
  size_t needed = 0;
  const char* name = NULL;
  const char* sentence = NULL;
  uint32_t reason = 0;
  weightmap_model* model = open_one("model.safetensors");
  uint64_t resident = 0, total = 0;

  CHECK(strchr(weightmap_version(), '.') != NULL);
  CHECK(strcmp(weightmap_status_name(WEIGHTMAP_ERROR_CANCELLED), "cancelled") == 0);
  CHECK(strcmp(weightmap_status_name(WEIGHTMAP_ERROR_BAD_ARGUMENT), "bad_argument") == 0);

  CHECK_OK(weightmap_cache_policy_parse("populate, dontneed", &flags));
  CHECK(flags == (WEIGHTMAP_CACHE_POPULATE | WEIGHTMAP_CACHE_DONTNEED));
  CHECK_OK(weightmap_cache_policy_string(flags, text, sizeof(text), &needed));
  CHECK(strcmp(text, "populate,dontneed") == 0 && needed == strlen(text));
  CHECK_OK(weightmap_cache_policy_string(flags, text, 4, &needed));
  CHECK(strcmp(text, "pop") == 0 && needed == 17);
  CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_cache_policy_string(0x80u, text, 64, NULL));

  /* Every reason has a name and a sentence, and the list ends with bad_argument. */
  while (weightmap_reason_describe(reason, &name, &sentence) == WEIGHTMAP_OK) {
    CHECK(name != NULL && sentence != NULL && strlen(sentence) > strlen(name) / 2);
    ++reason;
  }
  CHECK(reason == 8);
  CHECK_OK(weightmap_reason_describe(WEIGHTMAP_REASON_RISKY_FILESYSTEM, &name, NULL));
  CHECK(strcmp(name, "risky_filesystem") == 0);

  if (model != NULL) {
    CHECK_OK(weightmap_model_residency(model, &resident, &total));
    CHECK(total > 0);
    weightmap_model_free(model);
  }
}

/* ---- error paths ------------------------------------------------------------------------- */

static void test_missing_file(void) {
  const char* paths[1];
  weightmap_model* model = NULL;
  paths[0] = fixture("absent.safetensors");
  CHECK_STATUS(WEIGHTMAP_ERROR_IO, weightmap_open(paths, NULL, 1, &model));
  CHECK(model == NULL);
  CHECK(contains(weightmap_last_error(), "absent.safetensors"));
}

static void test_malformed_file(void) {
  const char* paths[1];
  weightmap_model* model = NULL;
  paths[0] = fixture("malformed.safetensors");
  CHECK_STATUS(WEIGHTMAP_ERROR_MALFORMED, weightmap_open(paths, NULL, 1, &model));
  CHECK(model == NULL);
  CHECK(contains(weightmap_last_error(), "malformed.safetensors: "));
}

static void test_missing_tensor(void) {
  weightmap_model* model = open_one("model.safetensors");
  weightmap_load* load = NULL;
  weightmap_request request;
  weightmap_metadata_value value;
  size_t index = 0;
  if (model == NULL) return;
  request.struct_size = sizeof(request);
  CHECK_OK(weightmap_request_init(&request, "no.such.weight"));
  CHECK_STATUS(WEIGHTMAP_ERROR_NOT_FOUND, weightmap_load_model(model, &request, 1, NULL, &load));
  CHECK(load == NULL);
  CHECK(contains(weightmap_last_error(), "model.safetensors: "));
  CHECK(contains(weightmap_last_error(), "(tensor no.such.weight)"));
  CHECK_STATUS(WEIGHTMAP_ERROR_NOT_FOUND, weightmap_model_find_tensor(model, "x", &index));
  CHECK(contains(weightmap_last_error(), "(tensor x)"));
  value.struct_size = sizeof(value);
  CHECK_STATUS(WEIGHTMAP_ERROR_NOT_FOUND, weightmap_model_metadata(model, "nope", &value));
  CHECK(contains(weightmap_last_error(), "nope"));
  weightmap_model_free(model);
}

static void test_bad_arguments(void) {
  weightmap_model* model = open_one("model.safetensors");
  weightmap_model* out = NULL;
  weightmap_load* load = NULL;
  weightmap_lora* lora = NULL;
  weightmap_lora_patcher* patcher = NULL;
  weightmap_tensor_info info;
  weightmap_tensor_data data;
  weightmap_request request;
  const char* paths[1];
  const char* null_paths[1];
  size_t count = 0;
  uint32_t dtype = 0;
  const char* name = NULL;
  if (model == NULL) return;
  paths[0] = fixture("model.safetensors");
  null_paths[0] = NULL;

  CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_open(NULL, NULL, 1, &out));
  CHECK(contains(weightmap_last_error(), "weightmap_open: paths is NULL"));
  CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_open(paths, NULL, 1, NULL));
  CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_open(paths, NULL, 0, &out));
  CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_open(null_paths, NULL, 1, &out));
  CHECK(contains(weightmap_last_error(), "paths[0] is NULL"));
  CHECK(out == NULL);

  CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_model_tensor_count(NULL, &count));
  CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_model_tensor_count(model, NULL));
  info.struct_size = sizeof(info);
  CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_model_tensor_info(model, 3, &info));
  CHECK(contains(weightmap_last_error(), "index 3 is out of range (there are 3)"));
  CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_model_tensor_info(model, 0, NULL));
  info.struct_size = 0;
  CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_model_tensor_info(model, 0, &info));
  CHECK(contains(weightmap_last_error(), "struct_size is 0"));
  CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_model_find_tensor(model, NULL, &count));
  CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT,
               weightmap_model_metadata_element(model, "title", 0, NULL));
  CHECK_STATUS(WEIGHTMAP_ERROR_UNKNOWN_DTYPE, weightmap_dtype_name(999, &name));
  CHECK_STATUS(WEIGHTMAP_ERROR_UNKNOWN_DTYPE, weightmap_dtype_from_name("f7", &dtype));
  CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_cache_policy_parse(NULL, &dtype));

  CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_load_model(NULL, NULL, 0, NULL, &load));
  CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_load_model(model, NULL, 2, NULL, &load));
  request.struct_size = sizeof(request);
  CHECK_OK(weightmap_request_init(&request, NULL));
  CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_load_model(model, &request, 1, NULL, &load));
  CHECK(contains(weightmap_last_error(), "requests[0].name is NULL"));
  CHECK_OK(weightmap_request_init(&request, "a.weight"));
  request.dtype = 12345;
  CHECK_STATUS(WEIGHTMAP_ERROR_UNKNOWN_DTYPE,
               weightmap_load_model(model, &request, 1, NULL, &load));
  request.dtype = WEIGHTMAP_DTYPE_AS_STORED;
  request.alignment = 3;
  CHECK_STATUS(WEIGHTMAP_ERROR_INVALID_ARGUMENT,
               weightmap_load_model(model, &request, 1, NULL, &load));
  CHECK(load == NULL);

  CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_load_tensor_count(NULL, &count));
  data.struct_size = sizeof(data);
  CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_load_tensor(NULL, 0, &data));
  CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_load_release(NULL, "x"));
  CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_tensor_data_get(NULL, &data));
  CHECK_OK(weightmap_load_model(model, NULL, 0, NULL, &load));
  if (load != NULL) {
    CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_load_tensor(load, 7, &data));
    CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_load_release(load, NULL));
    CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_load_reason_count(load, 8, &count));
    CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_load_note(load, 0, &name));
  }

  CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_lora_read(NULL, NULL, &lora));
  CHECK_STATUS(WEIGHTMAP_ERROR_IO, weightmap_lora_read(fixture("absent.safetensors"), NULL, &lora));
  CHECK_OK(weightmap_lora_read(fixture("lora.safetensors"), NULL, &lora));
  if (lora != NULL) {
    CHECK_STATUS(WEIGHTMAP_ERROR_NOT_FOUND,
                 weightmap_lora_match(lora, model, "sdxl-maybe", 0, NULL, NULL));
    CHECK(contains(weightmap_last_error(), "sdxl-maybe"));
    CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT,
                 weightmap_lora_match(lora, NULL, "plain", 0, NULL, NULL));
    CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_lora_target(lora, 0, &name));
    if (load != NULL) {
      CHECK_OK(weightmap_lora_patcher_new(load, &patcher));
      CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_lora_patcher_new(load, &patcher));
      CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_load_release(load, "a"));
      CHECK(contains(weightmap_last_error(), "free the patcher first"));
      CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT,
                   weightmap_lora_patcher_apply(patcher, lora, 1.0f, NULL));
      CHECK(contains(weightmap_last_error(), "match the LoRA first"));
      CHECK_STATUS(WEIGHTMAP_ERROR_NOT_FOUND, weightmap_lora_patcher_undo(patcher, 77));
      /* Matched, but the load mapped a.weight read-only: refused before any byte changes. */
      CHECK_OK(weightmap_lora_match(lora, model, "plain", 1, NULL, NULL));
      CHECK_STATUS(WEIGHTMAP_ERROR_INVALID_ARGUMENT,
                   weightmap_lora_patcher_apply(patcher, lora, 1.0f, NULL));
      CHECK(contains(weightmap_last_error(), "a.weight"));
      weightmap_lora_patcher_free(patcher);
      CHECK_OK(weightmap_load_release(load, "a"));
    }
    weightmap_lora_free(lora);
  }
  weightmap_load_free(load);

  /* The free calls take NULL, as free() does. */
  weightmap_model_free(NULL);
  weightmap_load_free(NULL);
  weightmap_tensor_free(NULL);
  weightmap_lora_free(NULL);
  weightmap_lora_patcher_free(NULL);
  weightmap_model_free(model);
}

static void* fail_in_another_thread(void* message) {
  const char* paths[1];
  weightmap_model* model = NULL;
  paths[0] = "/nonexistent/other-thread.safetensors";
  if (weightmap_open(paths, NULL, 1, &model) != WEIGHTMAP_OK) {
    strncpy((char*)message, weightmap_last_error(), 255);
  }
  return NULL;
}

static void test_the_last_error_is_per_thread(void) {
  const char* paths[1];
  weightmap_model* model = NULL;
  pthread_t thread;
  char message[256] = {0};
  paths[0] = fixture("absent.safetensors");
  CHECK_STATUS(WEIGHTMAP_ERROR_IO, weightmap_open(paths, NULL, 1, &model));
  CHECK(pthread_create(&thread, NULL, fail_in_another_thread, message) == 0);
  CHECK(pthread_join(thread, NULL) == 0);
  CHECK(contains(message, "other-thread.safetensors"));
  /* This thread's message is its own failure's, untouched by the other thread's. */
  CHECK(contains(weightmap_last_error(), "absent.safetensors"));
  CHECK(!contains(weightmap_last_error(), "other-thread"));
  /* A successful call leaves it alone too. */
  CHECK_OK(weightmap_cache_policy_parse("", &parsed_flags));
  CHECK(contains(weightmap_last_error(), "absent.safetensors"));
}

/* ---- LoRA round trip --------------------------------------------------------------------- */

static void test_lora_apply_and_undo_round_trip(void) {
  weightmap_model* model = open_one("model.safetensors");
  weightmap_lora* lora = NULL;
  weightmap_load* load = NULL;
  weightmap_lora_patcher* patcher = NULL;
  weightmap_request request;
  weightmap_tensor_data data;
  unsigned char before[128];
  size_t matched = 0, unmatched = 0, modules = 0, r = 0, c = 0, k = 0;
  const char* target = NULL;
  uint64_t id = 0;
  int patched_as_expected = 1;
  if (model == NULL) return;

  CHECK_OK(weightmap_lora_read(fixture("lora.safetensors"), NULL, &lora));
  if (lora == NULL) goto done;
  CHECK_OK(weightmap_lora_module_count(lora, &modules));
  CHECK(modules == 1);
  /* "auto": no preset's names in this model, so the plain rules. */
  CHECK_OK(weightmap_lora_match(lora, model, "auto", 1, &matched, &unmatched));
  CHECK(matched == 1 && unmatched == 0);
  CHECK_OK(weightmap_lora_match(lora, model, "plain", 1, &matched, &unmatched));
  CHECK(matched == 1 && unmatched == 0);
  CHECK_OK(weightmap_lora_target(lora, 0, &target));
  CHECK(target != NULL && strcmp(target, "a.weight") == 0);

  request.struct_size = sizeof(request);
  CHECK_OK(weightmap_request_init(&request, "a.weight"));
  request.writes_in_place = 1;
  CHECK_OK(weightmap_load_model(model, &request, 1, NULL, &load));
  if (load == NULL) goto done;
  data.struct_size = sizeof(data);
  CHECK_OK(weightmap_load_tensor(load, 0, &data));
  CHECK(data.mapped == 1 && data.writable != NULL); /* mapped copy-on-write */
  CHECK(data.nbytes == sizeof(before));
  memcpy(before, data.data, sizeof(before));

  CHECK_OK(weightmap_lora_patcher_new(load, &patcher));
  if (patcher == NULL) goto done;
  CHECK_OK(weightmap_lora_patcher_apply(patcher, lora, 1.0f, &id));
  CHECK(memcmp(before, data.data, sizeof(before)) != 0);
  /* W[r][c] += up[r][k] * down[k][c]: up (lora_B) is [4, 2], down (lora_A) is [2, 8]; no
   * alpha in the file, so alpha = rank and the scale is the multiplier. */
  for (r = 0; r < 4; ++r) {
    for (c = 0; c < 8; ++c) {
      float expected = fixture_value(r * 8 + c);
      for (k = 0; k < 2; ++k) expected += lora_value(r * 2 + k) * lora_value(k * 8 + c);
      if (fabsf(((const float*)data.data)[r * 8 + c] - expected) > 1e-5f) patched_as_expected = 0;
    }
  }
  CHECK(patched_as_expected);

  CHECK_OK(weightmap_lora_patcher_undo(patcher, id));
  CHECK(memcmp(before, data.data, sizeof(before)) == 0);
  CHECK_STATUS(WEIGHTMAP_ERROR_NOT_FOUND, weightmap_lora_patcher_undo(patcher, id));

  CHECK_OK(weightmap_lora_patcher_apply(patcher, lora, 0.5f, &id));
  CHECK(memcmp(before, data.data, sizeof(before)) != 0);
  CHECK_OK(weightmap_lora_patcher_undo_all(patcher));
  CHECK(memcmp(before, data.data, sizeof(before)) == 0);

done:
  weightmap_lora_patcher_free(patcher);
  weightmap_load_free(load);
  weightmap_lora_free(lora);
  weightmap_model_free(model);
}

/* ---- callbacks that cancel --------------------------------------------------------------- */

static int progress_calls = 0;
static int cancel_at_first_call(void* user_data, uint64_t bytes_done, uint64_t bytes_total,
                                size_t tensors_done, size_t tensors_total) {
  int* calls = (int*)user_data;
  (void)bytes_done;
  (void)tensors_done;
  if (bytes_total > 0 && tensors_total == 3) ++*calls;
  return 1;
}
static int never_cancel(void* user_data, uint64_t bytes_done, uint64_t bytes_total,
                        size_t tensors_done, size_t tensors_total) {
  int* calls = (int*)user_data;
  (void)bytes_total;
  (void)tensors_total;
  if (tensors_done <= 3 && bytes_done <= bytes_total) ++*calls;
  return 0;
}

static void test_progress_callback_cancels(void) {
  weightmap_model* model = open_one("model.safetensors");
  weightmap_load* load = NULL;
  weightmap_load_options options;
  int calls = 0;
  if (model == NULL) return;
  options.struct_size = sizeof(options);
  CHECK_OK(weightmap_load_options_init(&options));
  options.mode = WEIGHTMAP_LOAD_MODE_READ; /* every tensor is read, so progress is reported */
  options.progress = cancel_at_first_call;
  options.progress_user_data = &calls;
  CHECK_STATUS(WEIGHTMAP_ERROR_CANCELLED, weightmap_load_model(model, NULL, 0, &options, &load));
  CHECK(load == NULL);
  CHECK(calls >= 1);
  CHECK(contains(weightmap_last_error(), "cancel"));

  options.progress = never_cancel;
  progress_calls = 0;
  options.progress_user_data = &progress_calls;
  CHECK_OK(weightmap_load_model(model, NULL, 0, &options, &load));
  CHECK(progress_calls >= 1);
  weightmap_load_free(load);
  weightmap_model_free(model);
}

/* The load mode: `mode`, or the 0.1 fields from a struct compiled against 0.1 (no `mode`). */
static const char* mode_of_load(weightmap_model* model, const weightmap_load_options* options) {
  static char mode[16];
  weightmap_load* load = NULL;
  weightmap_load_report report;
  mode[0] = '\0';
  CHECK_OK(weightmap_load_model(model, NULL, 0, options, &load));
  if (load == NULL) return mode;
  report.struct_size = sizeof(report);
  CHECK_OK(weightmap_load_get_report(load, &report));
  snprintf(mode, sizeof(mode), "%s", report.mode);
  weightmap_load_free(load);
  return mode;
}

static void test_load_mode_and_the_0_1_struct(void) {
  weightmap_model* model = open_one("model.safetensors");
  weightmap_load* load = NULL;
  weightmap_load_options options;
  if (model == NULL) return;
  options.struct_size = sizeof(options);
  CHECK_OK(weightmap_load_options_init(&options));
  options.cache_from_env = 0;
  options.mode = WEIGHTMAP_LOAD_MODE_READ;
  CHECK(strcmp(mode_of_load(model, &options), "read") == 0);
  options.mode = WEIGHTMAP_LOAD_MODE_AUTO;
  CHECK(strcmp(mode_of_load(model, &options), "auto") == 0);
  options.mode = 4;
  CHECK_STATUS(WEIGHTMAP_ERROR_BAD_ARGUMENT, weightmap_load_model(model, NULL, 0, &options, &load));
  CHECK(contains(weightmap_last_error(), "WEIGHTMAP_LOAD_MODE_"));
  /* A 0.1 caller's struct ends before `mode` (which holds 4 here, never read): its flags say. */
  options.struct_size = offsetof(weightmap_load_options, mode);
  options.automatic_v0_1 = 0;
  options.use_mmap_v0_1 = 0;
  options.direct_io_v0_1 = 0;
  CHECK(strcmp(mode_of_load(model, &options), "read") == 0);
  options.direct_io_v0_1 = 1;
  CHECK(strcmp(mode_of_load(model, &options), "direct") == 0);
  options.automatic_v0_1 = 1;
  CHECK(strcmp(mode_of_load(model, &options), "auto") == 0);
  options.automatic_v0_1 = 0;
  options.use_mmap_v0_1 = 1;
  options.direct_io_v0_1 = 0;
  CHECK(strcmp(mode_of_load(model, &options), "mmap") == 0);
  weightmap_model_free(model);
}

/* ---- the fixture directory --------------------------------------------------------------- */

static int make_fixtures(const char* writer) {
  char command[1024];
  const char* tmp = getenv("TMPDIR");
  snprintf(fixture_dir, sizeof(fixture_dir), "%s/weightmap_capi_XXXXXX",
           tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
  if (mkdtemp(fixture_dir) == NULL) {
    perror("mkdtemp");
    return 0;
  }
  snprintf(command, sizeof(command), "'%s' '%s'", writer, fixture_dir);
  return system(command) == 0;
}

static void remove_fixtures(void) {
  static const char* const names[] = {"model.safetensors", "model.gguf", "lora.safetensors",
                                      "malformed.safetensors"};
  size_t i;
  for (i = 0; i < sizeof(names) / sizeof(names[0]); ++i) remove(fixture(names[i]));
  rmdir(fixture_dir);
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s WRITE_FIXTURES_EXE\n", argv[0]);
    return 2;
  }
  if (!make_fixtures(argv[1])) {
    fprintf(stderr, "capi_test: could not write the fixtures\n");
    remove_fixtures();
    return 1;
  }
  test_open_and_describe();
  test_struct_size_smaller_than_the_struct_is_respected();
  test_metadata();
  test_load_everything_as_stored_maps_it();
  test_requests_convert_and_say_why();
  test_tensor_handle_outlives_load_and_model();
  test_release_a_component();
  test_version_names_and_policy();
  test_missing_file();
  test_malformed_file();
  test_missing_tensor();
  test_bad_arguments();
  test_the_last_error_is_per_thread();
  test_lora_apply_and_undo_round_trip();
  test_progress_callback_cancels();
  test_load_mode_and_the_0_1_struct();
  remove_fixtures();
  printf("capi: %d passed, %d failed\n", checks_passed, checks_failed);
  return checks_failed == 0 ? 0 : 1;
}
