/* weightmap's C API: for engines written in C and for every language that binds C (Python's
 * ctypes, Rust, Go, C#, Node). C99, no C++ types; see docs/c-api.md.
 *
 * Rules that hold for every call:
 *  - Every call returns a weightmap_status, except the few that cannot fail (the *_free
 *    calls, weightmap_version, weightmap_status_name, weightmap_last_error). No C++ exception
 *    ever crosses this boundary.
 *  - On failure, weightmap_last_error() gives the message of this thread's last failed call,
 *    as weightmap::Error renders it ("FILE: sentence (tensor NAME, byte OFFSET)").
 *  - Out-parameters are written only on success.
 *  - Structs that may grow carry their size as their first field, `struct_size`: set it to
 *    sizeof the struct you compiled against; the library reads and writes no byte past it.
 *  - Strings the library returns stay valid as long as the handle they came from (static
 *    strings forever). Strings from files may hold any bytes; lengths are given where a
 *    string may contain NUL.
 *  - Handles are independent: a load keeps what it needs of its model alive, a tensor handle
 *    keeps its mapping alive, so they may be freed in any order.
 */
#ifndef WEIGHTMAP_WEIGHTMAP_H
#define WEIGHTMAP_WEIGHTMAP_H

#include <stddef.h>
#include <stdint.h>

/* Marks the C API as exported from the shared library. Defined here until the project has
 * one export header for C and C++; a build may define it first. */
#ifndef WEIGHTMAP_C_API
#if defined(__GNUC__) || defined(__clang__)
#define WEIGHTMAP_C_API __attribute__((visibility("default")))
#else
#define WEIGHTMAP_C_API
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Status codes and errors ------------------------------------------------------------ */

typedef enum weightmap_status {
  WEIGHTMAP_OK = 0,
  /* The codes of weightmap::ErrorCode, in its order. */
  WEIGHTMAP_ERROR_IO = 1,               /* open/read/stat/mmap failed, or a file is too short */
  WEIGHTMAP_ERROR_MALFORMED = 2,        /* the bytes break the format's rules */
  WEIGHTMAP_ERROR_UNSUPPORTED = 3,      /* valid, but something weightmap does not support */
  WEIGHTMAP_ERROR_UNKNOWN_DTYPE = 4,    /* a type id or name not in the dtype table */
  WEIGHTMAP_ERROR_NOT_FOUND = 5,        /* a tensor, key, file or LoRA id that is absent */
  WEIGHTMAP_ERROR_DUPLICATE = 6,        /* the same tensor name twice */
  WEIGHTMAP_ERROR_INVALID_ARGUMENT = 7, /* a request or option the library refused */
  WEIGHTMAP_ERROR_CANCELLED = 8,        /* a progress callback cancelled */
  /* The C layer's own. */
  WEIGHTMAP_ERROR_BAD_ARGUMENT = 9,   /* a NULL pointer, an index out of range, a bad size */
  WEIGHTMAP_ERROR_OUT_OF_MEMORY = 10, /* an allocation failed */
  WEIGHTMAP_ERROR_INTERNAL = 11       /* anything else (a bug: please report it) */
} weightmap_status;

/* "ok", "io", "malformed", ..., "internal"; "unknown" for other values. */
WEIGHTMAP_C_API const char* weightmap_status_name(weightmap_status status);

/* The message of this thread's last failed call; "" when none failed yet. Valid until this
 * thread's next failed call. */
WEIGHTMAP_C_API const char* weightmap_last_error(void);

/* "MAJOR.MINOR.PATCH" of the library loaded at run time. */
WEIGHTMAP_C_API const char* weightmap_version(void);

/* ---- Handles ---------------------------------------------------------------------------- */

typedef struct weightmap_model weightmap_model;               /* opened, validated files */
typedef struct weightmap_load weightmap_load;                 /* storage for requested tensors */
typedef struct weightmap_tensor weightmap_tensor;             /* one loaded tensor, kept alive */
typedef struct weightmap_lora weightmap_lora;                 /* a LoRA file and its match */
typedef struct weightmap_lora_patcher weightmap_lora_patcher; /* patches a load in place */

/* ---- Types ------------------------------------------------------------------------------ */

/* Type ids are weightmap's (equal to ggml's enum ggml_type below 1000). Names are ggml's
 * spelling ("f32", "bf16", "q4_K"; lower case for types ggml lacks: "f8_e4m3"). */
WEIGHTMAP_C_API weightmap_status weightmap_dtype_name(uint32_t dtype, const char** name);
WEIGHTMAP_C_API weightmap_status weightmap_dtype_from_name(const char* name, uint32_t* dtype);

/* ---- Opening a model -------------------------------------------------------------------- */

/* Opens and validates `count` sources: model files, `*.safetensors.index.json` files or
 * folders. `prefixes` is NULL or `count` strings (NULL or "" for none) put in front of the
 * tensor names of each source ("vae." for a VAE file), so one model holds several parts. */
WEIGHTMAP_C_API weightmap_status weightmap_open(const char* const* paths,
                                                const char* const* prefixes, size_t count,
                                                weightmap_model** model);
WEIGHTMAP_C_API void weightmap_model_free(weightmap_model* model);

WEIGHTMAP_C_API weightmap_status weightmap_model_file_count(const weightmap_model* model,
                                                            size_t* count);
/* format: "safetensors", "gguf" or "pytorch-zip". */
WEIGHTMAP_C_API weightmap_status weightmap_model_file(const weightmap_model* model, size_t index,
                                                      const char** path, const char** format,
                                                      uint64_t* size);

typedef struct weightmap_tensor_info {
  size_t struct_size;
  const char* name;
  uint32_t dtype;
  const char* dtype_name;
  size_t n_dims;
  const uint64_t* shape; /* outermost first, n_dims values */
  uint32_t file;         /* index of the model's file that holds the bytes */
  uint64_t offset;       /* absolute byte offset in that file */
  uint64_t nbytes;
  int contiguous; /* 0 for a strided PyTorch view: then the bytes are not one range */
} weightmap_tensor_info;

WEIGHTMAP_C_API weightmap_status weightmap_model_tensor_count(const weightmap_model* model,
                                                              size_t* count);
/* In file order. */
WEIGHTMAP_C_API weightmap_status weightmap_model_tensor_info(const weightmap_model* model,
                                                             size_t index,
                                                             weightmap_tensor_info* info);
/* WEIGHTMAP_ERROR_NOT_FOUND naming the tensor when absent. */
WEIGHTMAP_C_API weightmap_status weightmap_model_find_tensor(const weightmap_model* model,
                                                             const char* name, size_t* index);

/* ---- Metadata --------------------------------------------------------------------------- */

/* GGUF's value type ids; safetensors __metadata__ values are strings. */
typedef enum weightmap_metadata_type {
  WEIGHTMAP_METADATA_U8 = 0,
  WEIGHTMAP_METADATA_I8 = 1,
  WEIGHTMAP_METADATA_U16 = 2,
  WEIGHTMAP_METADATA_I16 = 3,
  WEIGHTMAP_METADATA_U32 = 4,
  WEIGHTMAP_METADATA_I32 = 5,
  WEIGHTMAP_METADATA_F32 = 6,
  WEIGHTMAP_METADATA_BOOL = 7,
  WEIGHTMAP_METADATA_STRING = 8,
  WEIGHTMAP_METADATA_ARRAY = 9,
  WEIGHTMAP_METADATA_U64 = 10,
  WEIGHTMAP_METADATA_I64 = 11,
  WEIGHTMAP_METADATA_F64 = 12
} weightmap_metadata_type;

typedef struct weightmap_metadata_value {
  size_t struct_size;
  uint32_t type;         /* a weightmap_metadata_type */
  uint32_t element_type; /* of an array's elements */
  /* Numbers and booleans in all three forms (a float truncated in the integer forms). */
  int64_t as_int;
  uint64_t as_uint;
  double as_double;
  /* Strings: the bytes (not NUL-terminated within the file's bytes, but followed by a NUL)
   * and their length. NULL otherwise. */
  const char* string;
  size_t string_length;
  size_t array_count; /* elements of an array; 0 otherwise */
} weightmap_metadata_value;

WEIGHTMAP_C_API weightmap_status weightmap_model_metadata_count(const weightmap_model* model,
                                                                size_t* count);
WEIGHTMAP_C_API weightmap_status weightmap_model_metadata_key(const weightmap_model* model,
                                                              size_t index, const char** key);
/* WEIGHTMAP_ERROR_NOT_FOUND naming the key when absent. */
WEIGHTMAP_C_API weightmap_status weightmap_model_metadata(const weightmap_model* model,
                                                          const char* key,
                                                          weightmap_metadata_value* value);
/* Element `index` of the array under `key`. */
WEIGHTMAP_C_API weightmap_status weightmap_model_metadata_element(const weightmap_model* model,
                                                                  const char* key, size_t index,
                                                                  weightmap_metadata_value* value);

/* ---- Page-cache policy ------------------------------------------------------------------ */

/* Flags of weightmap::CachePolicy (include/weightmap/cache_policy.hpp); all off by default. */
#define WEIGHTMAP_CACHE_SEQUENTIAL 0x01u
#define WEIGHTMAP_CACHE_RANDOM 0x02u
#define WEIGHTMAP_CACHE_WILLNEED 0x04u
#define WEIGHTMAP_CACHE_POPULATE 0x08u
#define WEIGHTMAP_CACHE_DONTNEED 0x10u
#define WEIGHTMAP_CACHE_HUGEPAGE 0x20u
#define WEIGHTMAP_CACHE_MLOCK 0x40u

/* "populate,dontneed" -> flags. Unknown words are ignored (as WEIGHTMAP_MMAP_FLAGS does). */
WEIGHTMAP_C_API weightmap_status weightmap_cache_policy_parse(const char* words, uint32_t* flags);
/* The flags of the WEIGHTMAP_MMAP_FLAGS environment variable (0 when unset). */
WEIGHTMAP_C_API weightmap_status weightmap_cache_policy_from_env(uint32_t* flags);
/* flags -> "populate,dontneed" into `buffer` (NUL-terminated, cut to `size`); `needed` (may be
 * NULL) gets the length without the NUL. */
WEIGHTMAP_C_API weightmap_status weightmap_cache_policy_string(uint32_t flags, char* buffer,
                                                               size_t size, size_t* needed);
/* Bytes of the model's tensors in the page cache now, and in all. */
WEIGHTMAP_C_API weightmap_status weightmap_model_residency(const weightmap_model* model,
                                                           uint64_t* resident_bytes,
                                                           uint64_t* tensor_bytes);

/* ---- Loading ---------------------------------------------------------------------------- */

/* Called from a worker thread, one call at a time, as loaded bytes come in. Return nonzero to
 * cancel the load (weightmap_load_model then fails with WEIGHTMAP_ERROR_CANCELLED). */
typedef int (*weightmap_progress_fn)(void* user_data, uint64_t bytes_done, uint64_t bytes_total,
                                     size_t tensors_done, size_t tensors_total);

typedef enum weightmap_log_level {
  WEIGHTMAP_LOG_DEBUG = 0,
  WEIGHTMAP_LOG_INFO = 1,
  WEIGHTMAP_LOG_WARNING = 2
} weightmap_log_level;
/* One line (NUL-terminated, no newline), from the loading thread or a worker. */
typedef void (*weightmap_log_fn)(void* user_data, weightmap_log_level level, const char* line);

#define WEIGHTMAP_DTYPE_AS_STORED (-1)

typedef struct weightmap_request {
  size_t struct_size;
  const char* name;
  int32_t dtype;                      /* a type id, or WEIGHTMAP_DTYPE_AS_STORED */
  int writes_in_place;                /* the caller patches the bytes (a LoRA applied in place) */
  int optional;                       /* absent from the files is not an error */
  int device_cannot_read_host_memory; /* the device needs its own copy */
  uint32_t alignment; /* alignment the device needs (a power of two); 0: each tensor's natural
                         alignment (of its type's element or block), all a CPU needs */
} weightmap_request;

/* Sets every field to its default (the tensor as stored, natural alignment) and `name`; set
 * struct_size first. */
WEIGHTMAP_C_API weightmap_status weightmap_request_init(weightmap_request* request,
                                                        const char* name);

/* How tensors that are not mapped are read; weightmap::LoadMode, in its order (loading.md). */
typedef enum weightmap_load_mode {
  WEIGHTMAP_LOAD_MODE_AUTO = 0,  /* weightmap chooses mapping or reading per file and tensor */
  WEIGHTMAP_LOAD_MODE_MMAP = 1,  /* map what can be mapped, pread the rest */
  WEIGHTMAP_LOAD_MODE_READ = 2,  /* map nothing, pread every tensor */
  WEIGHTMAP_LOAD_MODE_DIRECT = 3 /* map nothing, read every tensor with O_DIRECT */
} weightmap_load_mode;

typedef struct weightmap_load_options {
  size_t struct_size;
  /* The 0.1 spelling of the mode, read only from a struct too small to hold `mode` (a caller
   * compiled against 0.1): automatic, else use_mmap 0 (read, or direct with direct_io), else
   * mmap. Renamed so that code setting them fails to compile instead of being ignored. */
  int automatic_v0_1;
  int use_mmap_v0_1;
  int allow_copy_on_write; /* 0: tensors written in place are copied, never mapped private */
  int direct_io_v0_1;
  unsigned workers; /* copy workers */
  uint64_t staging_bytes_cap;
  uint32_t cache_flags; /* WEIGHTMAP_CACHE_* */
  int cache_from_env;   /* also apply WEIGHTMAP_MMAP_FLAGS */
  weightmap_progress_fn progress;
  void* progress_user_data;
  weightmap_log_fn log;
  void* log_user_data;
  int32_t mode; /* a weightmap_load_mode (since 0.2) */
} weightmap_load_options;

/* Sets the fields to the defaults of weightmap::LoadOptions (set struct_size first). */
WEIGHTMAP_C_API weightmap_status weightmap_load_options_init(weightmap_load_options* options);

/* Plans, maps and loads. `requests` (an array of `count`, each with the same struct_size,
 * which is the array's stride) ask for tensors; NULL with count 0 asks for every tensor as
 * stored, read-only, in file order. `options` may be NULL (the defaults). */
WEIGHTMAP_C_API weightmap_status weightmap_load_model(const weightmap_model* model,
                                                      const weightmap_request* requests,
                                                      size_t count,
                                                      const weightmap_load_options* options,
                                                      weightmap_load** load);
WEIGHTMAP_C_API void weightmap_load_free(weightmap_load* load);

/* Tensors of the load in request order (absent optional ones left out). */
WEIGHTMAP_C_API weightmap_status weightmap_load_tensor_count(const weightmap_load* load,
                                                             size_t* count);
WEIGHTMAP_C_API weightmap_status weightmap_load_find_tensor(const weightmap_load* load,
                                                            const char* name, size_t* index);

typedef struct weightmap_tensor_data {
  size_t struct_size;
  const char* name;
  uint32_t dtype;
  const char* dtype_name;
  size_t n_dims;
  const uint64_t* shape;
  const void* data;
  void* writable; /* the same bytes when writing is allowed, else NULL */
  uint64_t nbytes;
  int mapped;                  /* 1: a view into the file's mapping; 0: a buffer weightmap filled */
  const char* reason;          /* why loaded, a stable name ("dtype_differs"); NULL if mapped */
  const char* reason_sentence; /* the same as a sentence; NULL if mapped */
} weightmap_tensor_data;

/* Strings and pointers valid while the load holds the tensor (see weightmap_load_release). */
WEIGHTMAP_C_API weightmap_status weightmap_load_tensor(const weightmap_load* load, size_t index,
                                                       weightmap_tensor_data* data);

/* A handle that keeps one tensor's storage (its mapping or buffer) alive on its own, after the
 * load is released or freed: for bindings whose arrays outlive the load. */
WEIGHTMAP_C_API weightmap_status weightmap_load_tensor_ref(const weightmap_load* load, size_t index,
                                                           weightmap_tensor** tensor);
WEIGHTMAP_C_API weightmap_status weightmap_tensor_data_get(const weightmap_tensor* tensor,
                                                           weightmap_tensor_data* data);
WEIGHTMAP_C_API void weightmap_tensor_free(weightmap_tensor* tensor);

/* Drops the load's handles of every tensor whose name starts with `prefix` (one component):
 * mappings no other handle uses are unmapped (and evicted, with the dontneed flag). Indices
 * of the tensors that stay change. */
WEIGHTMAP_C_API weightmap_status weightmap_load_release(weightmap_load* load, const char* prefix);

/* Why a tensor was loaded rather than mapped, in weightmap::Reason's order. */
typedef enum weightmap_reason {
  WEIGHTMAP_REASON_DTYPE_DIFFERS = 0,
  WEIGHTMAP_REASON_ELEMENT_COUNT_DIFFERS = 1,
  WEIGHTMAP_REASON_MISALIGNED_FOR_DEVICE = 2,
  WEIGHTMAP_REASON_DEVICE_CANNOT_READ_HOST_MEMORY = 3,
  WEIGHTMAP_REASON_COPY_ON_WRITE_REFUSED = 4,
  WEIGHTMAP_REASON_FORMAT_CANNOT_BE_MAPPED = 5,
  WEIGHTMAP_REASON_MAPPING_DISABLED = 6,
  WEIGHTMAP_REASON_RISKY_FILESYSTEM = 7
} weightmap_reason;

/* A reason's stable name and sentence; WEIGHTMAP_ERROR_BAD_ARGUMENT past the last reason, so
 * a caller can list them all without knowing how many there are. */
WEIGHTMAP_C_API weightmap_status weightmap_reason_describe(uint32_t reason, const char** name,
                                                           const char** sentence);

typedef struct weightmap_load_report {
  size_t struct_size;
  size_t mapped_tensors;
  uint64_t mapped_bytes;
  size_t mapped_files;
  size_t loaded_tensors;
  uint64_t loaded_bytes;
  size_t converted_tensors;
  double seconds;
  size_t unrequested_tensors;
  uint64_t unrequested_bytes;
  size_t missing_optional;
  unsigned workers;
  uint64_t peak_staging_bytes;
  const char* mode;    /* "auto", "mmap", "read" or "direct" (the options' mode) */
  const char* summary; /* "memory-mapped N tensors in M files (X MiB), loaded K ..." */
  size_t note_count;   /* fallbacks and warnings: weightmap_load_note */
} weightmap_load_report;

WEIGHTMAP_C_API weightmap_status weightmap_load_get_report(const weightmap_load* load,
                                                           weightmap_load_report* report);
/* Loaded tensors for one reason. */
WEIGHTMAP_C_API weightmap_status weightmap_load_reason_count(const weightmap_load* load,
                                                             uint32_t reason, size_t* count);
WEIGHTMAP_C_API weightmap_status weightmap_load_note(const weightmap_load* load, size_t index,
                                                     const char** note);

/* ---- LoRA ------------------------------------------------------------------------------- */

/* Reads a LoRA file (safetensors or a GGUF adapter). `alpha` (may be NULL) is the alpha of
 * modules whose file gives none. */
WEIGHTMAP_C_API weightmap_status weightmap_lora_read(const char* path, const float* alpha,
                                                     weightmap_lora** lora);
WEIGHTMAP_C_API void weightmap_lora_free(weightmap_lora* lora);
WEIGHTMAP_C_API weightmap_status weightmap_lora_module_count(const weightmap_lora* lora,
                                                             size_t* count);

/* Matches the LoRA's modules to the base model's tensors with the name rules of `preset`
 * ("auto": the preset the base model's names say; "sd1", "sd2", "sdxl", "flux": the tables
 * for those checkpoints, see docs/lora.md; "sd": stable-diffusion prefix rules only; "plain":
 * names as they stand); the match is kept in the
 * handle for weightmap_lora_patcher_apply. With `strict`, an unmatched module is an error.
 * WEIGHTMAP_ERROR_NOT_FOUND for an unknown preset. */
WEIGHTMAP_C_API weightmap_status weightmap_lora_match(weightmap_lora* lora,
                                                      const weightmap_model* base,
                                                      const char* preset, int strict,
                                                      size_t* matched, size_t* unmatched);
/* The base tensor the i-th matched module patches. */
WEIGHTMAP_C_API weightmap_status weightmap_lora_target(const weightmap_lora* lora, size_t index,
                                                       const char** base_tensor);

/* A patcher for the tensors of `load` (which it keeps alive). Patched tensors must have been
 * requested with writes_in_place (or loaded), and be f32, f16 or bf16. One thread at a time,
 * and one patcher per load. */
WEIGHTMAP_C_API weightmap_status weightmap_lora_patcher_new(weightmap_load* load,
                                                            weightmap_lora_patcher** patcher);
WEIGHTMAP_C_API void weightmap_lora_patcher_free(weightmap_lora_patcher* patcher);
/* W += multiplier * alpha / rank * up x down for every matched target of `lora`. `id` (may be
 * NULL) names the application for weightmap_lora_patcher_undo. */
WEIGHTMAP_C_API weightmap_status weightmap_lora_patcher_apply(weightmap_lora_patcher* patcher,
                                                              const weightmap_lora* lora,
                                                              float multiplier, uint64_t* id);
/* Takes one application out (mapped tensors drop their private pages). */
WEIGHTMAP_C_API weightmap_status weightmap_lora_patcher_undo(weightmap_lora_patcher* patcher,
                                                             uint64_t id);
WEIGHTMAP_C_API weightmap_status weightmap_lora_patcher_undo_all(weightmap_lora_patcher* patcher);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* WEIGHTMAP_WEIGHTMAP_H */
