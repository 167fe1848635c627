/* The C API from an installed package, as a C engine uses it (scripts/test-consumers.sh):
 * opens the model load_model wrote into the folder it is given, loads every tensor as stored
 * and checks that "w" is mapped and holds the values load_model wrote (tensor 0's element i
 * is the float i). Exits non-zero, saying why, when anything differs. */
#include <stdio.h>
#include <string.h>
#include <weightmap/weightmap.h>

static int fail(const char* what) {
  fprintf(stderr, "open_model: %s: %s\n", what, weightmap_last_error());
  return 1;
}

int main(int argc, char** argv) {
  char path[4096];
  const char* paths[1];
  weightmap_model* model = NULL;
  weightmap_load* load = NULL;
  weightmap_tensor_data data;
  size_t index = 0;
  size_t i;
  int status = 0;

  if (argc != 2) return fail("usage: open_model FOLDER");
  if (snprintf(path, sizeof path, "%s/consumer.safetensors", argv[1]) >= (int)sizeof path) {
    return fail("folder name too long");
  }
  if (weightmap_version()[0] == '\0') return fail("empty version");
  paths[0] = path;
  if (weightmap_open(paths, NULL, 1, &model) != WEIGHTMAP_OK) return fail("weightmap_open");
  if (weightmap_load_model(model, NULL, 0, NULL, &load) != WEIGHTMAP_OK) {
    weightmap_model_free(model);
    return fail("weightmap_load_model");
  }
  memset(&data, 0, sizeof data);
  data.struct_size = sizeof data;
  if (weightmap_load_find_tensor(load, "w", &index) != WEIGHTMAP_OK ||
      weightmap_load_tensor(load, index, &data) != WEIGHTMAP_OK) {
    status = fail("tensor w");
  } else if (!data.mapped || data.nbytes != 6 * sizeof(float)) {
    status = fail("w is not the mapped 6-float tensor");
  } else {
    for (i = 0; i < 6; ++i) {
      float v;
      memcpy(&v, (const char*)data.data + i * sizeof v, sizeof v);
      if (v != (float)i) status = fail("w holds other values than were written");
    }
  }
  /* A missing file is a status and a message, never an abort. */
  paths[0] = "/nonexistent/weightmap-consumer.safetensors";
  if (status == 0) {
    weightmap_model* missing = NULL;
    if (weightmap_open(paths, NULL, 1, &missing) == WEIGHTMAP_OK || missing != NULL) {
      status = fail("a missing file opened");
    } else if (strstr(weightmap_last_error(), "weightmap-consumer") == NULL) {
      status = fail("the error does not name the missing file");
    }
  }
  weightmap_load_free(load);
  weightmap_model_free(model);
  return status;
}
