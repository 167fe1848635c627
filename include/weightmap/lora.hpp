// LoRA adapters: reading them (kohya, PEFT/diffusers, LoCon, full differences, GGUF adapters),
// matching their modules to base tensors, and using them three ways:
//  - immediately, patching the loaded weights in place (W += scale * up x down), with undo
//    that drops the copy-on-write pages of mapped tensors instead of reading the model again;
//  - at runtime, as (down, up, scale) lists the engine adds to its matrix products;
//  - merged into a new model file, streaming.
// See docs/lora.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "weightmap/error.hpp"
#include "weightmap/export.hpp"
#include "weightmap/load.hpp"
#include "weightmap/model.hpp"
#include "weightmap/writer.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

enum class LoraKind {
  low_rank,   // up [out, r] x down [r, in] (kohya lora_up/lora_down, PEFT lora_B/lora_A, GGUF)
  locon,      // convolution: down [r, in, kh, kw], up [out, r, 1, 1]
  locon_mid,  // convolution with a mid (Tucker) factor: up x mid x down
  diff,       // a full-weight difference: W += scale * diff
};
// "lora", "locon", "locon_mid", "diff".
std::string_view lora_kind_name(LoraKind kind) noexcept;

// How a file spells its modules.
enum class LoraNaming {
  kohya,  // lora_unet_down_blocks_0_..., .lora_up.weight / .lora_down.weight / .alpha
  peft,   // base_model.model.x.y.lora_A.weight / .lora_B.weight (and diffusers' PEFT files)
  gguf,   // a GGUF adapter (general.type = adapter): <base tensor>.lora_a / .lora_b
  // diffusers before PEFT: unet.x.lora.down.weight / .lora.up.weight, the text encoder's
  // x.lora_linear_layer.down.weight, and attention processors' x.processor.to_q_lora.down.weight
  diffusers,
};
std::string_view lora_naming_name(LoraNaming naming) noexcept;

enum class AlphaSource {
  tensor,  // the module's own .alpha tensor (kohya)
  // adapter.lora.alpha (GGUF); safetensors: diffusers' lora_adapter_metadata JSON
  // (lora_alpha, alpha_pattern), lora_alpha, kohya's ss_network_alpha
  metadata,
  option,  // LoraReadOptions::alpha
  rank,    // none given: alpha = rank, a scale of 1
};

// The tensors of one LoRA module: what patches one base tensor.
struct LoraModule {
  // Without the part suffix: "lora_unet_input_blocks_1_1_proj_in",
  // "base_model.model.model.layers.0.self_attn.q_proj", "blk.0.attn_q.weight".
  std::string name;
  // Appended to the mapped name to name the base tensor: ".weight" (".bias" for a
  // .diff_b); empty for GGUF adapters, whose module names are base tensor names already.
  std::string target_suffix;
  LoraKind kind = LoraKind::low_rank;
  // Entries of the LoRA file's model (the tensor's file, offset, dtype, shape).
  std::optional<TensorInfo> up, down, mid, diff;
  std::uint64_t rank = 0;  // 0 for a diff
  float alpha = 0;         // the effective alpha: scale = multiplier * alpha / rank
  AlphaSource alpha_source = AlphaSource::rank;
};

struct LoraFile {
  Model model;  // the adapter file, validated by open_model
  LoraNaming naming = LoraNaming::kohya;
  std::vector<LoraModule> modules;   // in the file order of their first tensor
  std::vector<std::string> ignored;  // tensors that belong to no module (reported, not used)

  const std::string& path() const { return model.files().front().path; }
};

struct LoraReadOptions {
  // Alpha for modules whose file gives none (a PEFT file's adapter_config.json is read when it
  // is beside adapter_model.safetensors; elsewhere, give its lora_alpha here).
  std::optional<float> alpha;
};

// Opens a LoRA file (safetensors or a GGUF adapter) and groups its tensors into modules.
// Throws weightmap::Error: whatever open_model throws; Error(unsupported) "unsupported LoRA
// kind X for tensor Y" for LoHa, LoKr, OFT, GLoRA, DoRA, IA3 and norm modules and for a GGUF
// whose adapter.type is not "lora"; Error(malformed) for a module missing a part (up without
// down), parts of different kinds, a rank that differs between up and down, or an .alpha
// that is not one finite f32/f16/bf16 value. Tensors with no LoRA suffix are listed in
// `ignored`.
LoraFile read_lora(const std::string& path, const LoraReadOptions& options = {});

// --- Name matching -----------------------------------------------------------------------

// A LoRA module name starting with `lora_prefix` names the base tensor `base_prefix` + the
// rest (+ the module's target suffix). Kohya names replace every '.' with '_', which is
// ambiguous ("a_b" may be "a.b" or "a_b"), so an underscore name is resolved against the set
// of base tensor names: it matches the one base tensor whose name, with '.' read as '_',
// equals it.
struct LoraNameRule {
  std::string lora_prefix;
  std::string base_prefix;
};

// A module whose name is a base tensor name as it stands (GGUF adapters) matches without any
// rule. Otherwise the preset's tables are tried, then `rules` in order; the first that names
// an existing base tensor wins.
struct LoraNameRules {
  std::vector<LoraNameRule> rules;
  // A built-in preset (see lora_preset_names()): tables that map every trainer's spelling of
  // a model's modules (kohya, diffusers, PEFT, ai-toolkit) onto its checkpoint's names,
  // including modules that patch rows of a fused tensor. Empty: none.
  std::string preset;
};

// Stable-diffusion checkpoints (original layout): lora_unet_ -> model.diffusion_model.,
// lora_te_ -> cond_stage_model.transformer., lora_te1_ -> conditioner.embedders.0.transformer.
// (SDXL), diffusion_model. -> model.diffusion_model.; then the plain rules. Prefixes only:
// the presets also map diffusers' UNet names, OpenCLIP and Flux.
LoraNameRules sd_lora_name_rules();
// Names as they stand, and PEFT's base_model.model. prefix dropped.
LoraNameRules plain_lora_name_rules();

// The built-in presets: "sd1", "sd2", "sdxl", "flux".
std::vector<std::string_view> lora_preset_names();
// The preset whose checkpoint names `base` has (Flux's fused qkv, SDXL's OpenCLIP encoder
// or label_emb, SD 2.x's OpenCLIP encoder, SD 1.x's CLIP encoder or LDM UNet), else "".
std::string detect_lora_preset(const Model& base);
// The preset's tables, then the plain rules. Throws Error(invalid_argument) naming the
// presets for a name that is none of them.
LoraNameRules lora_preset_rules(std::string_view preset);
// lora_preset_rules(detect_lora_preset(base)), or the plain rules when none is detected.
LoraNameRules detected_lora_name_rules(const Model& base);

struct LoraTarget {
  std::size_t module = 0;   // index into LoraFile::modules
  std::string base_tensor;  // its name in the base model
  // The base tensor as a matrix: rows = its outermost dimension, cols = the rest.
  std::uint64_t rows = 0;
  std::uint64_t cols = 0;
  // The rows the module patches, [row_begin, row_begin + row_count): the whole tensor
  // (0, rows) unless the module is one slice of a fused tensor (q, k or v of a fused qkv).
  std::uint64_t row_begin = 0;
  std::uint64_t row_count = 0;
  // How the name matched, for reports: the preset rule ("sdxl openclip (lora_te2_):
  // text_model.encoder.layers.{a}. -> transformer.resblocks.{a}., self_attn.q_proj ->
  // attn.in_proj"), "prefix rule X -> Y", or empty when the module name is the tensor's.
  std::string rule;
};

struct UnmatchedLoraModule {
  std::string module;
  // Base tensors the name could mean when it is ambiguous (two or more); empty when none.
  std::vector<std::string> candidates;
};

struct LoraMatch {
  std::vector<LoraTarget> targets;  // module order
  std::vector<UnmatchedLoraModule> unmatched;
  std::string preset;  // the rules' preset, "" for none
};

// Matches every module of `lora` to a base tensor and checks that its shapes fit (throws
// Error(invalid_argument) naming the tensor when they do not: a LoRA for another model).
// Unmatched modules are listed; with `strict` any of them is an Error(not_found) giving
// their count and first names.
LoraMatch match_lora(const LoraFile& lora, const Model& base, const LoraNameRules& rules,
                     bool strict = false);
// With the rules of the preset detected from the base model's names.
LoraMatch match_lora(const LoraFile& lora, const Model& base, bool strict = false);

// One LoRA as used on a base model.
struct LoraUse {
  std::shared_ptr<const LoraFile> lora;
  LoraMatch match;
  float multiplier = 1.0f;
};

// scale = multiplier * alpha / rank (multiplier alone for a diff), as every path computes it.
float lora_scale(const LoraModule& module, float multiplier) noexcept;

// Sets writes_in_place on the requests of exactly the tensors `uses` patch, so the planner
// maps those copy-on-write (and only files holding them); adds a request for a target
// nobody asked for.
void mark_lora_targets(std::vector<TensorRequest>& requests, std::span<const LoraUse> uses);

// One request per base tensor (file order), writes_in_place for the LoRA targets only.
std::vector<TensorRequest> lora_requests(const Model& base, std::span<const LoraUse> uses);

// --- Quantized base tensors ----------------------------------------------------------------

// Reads rows of a quantized type as f32 and writes them back, so LoRAs can patch quantized
// base tensors (dequantize a tile of whole rows, add the patches, requantize in place). The
// core knows no quantized format: the ggml adapter gives one, weightmap::ggml::lora_codec().
// A row is the file shape's innermost dimension (ggml quantizes row by row). Called from
// several threads at once.
class LoraQuantCodec {
 public:
  virtual ~LoraQuantCodec();

  // Throws Error(unsupported) with a sentence saying why when `dtype` cannot be read as f32
  // and written back; the caller adds the file and tensor. Called before anything is patched.
  virtual void check(DType dtype) const = 0;
  // `rows`: whole rows of `dtype`; `out`: their elements.
  virtual void to_f32(DType dtype, std::span<const std::byte> rows, std::span<float> out) const = 0;
  // `values`: whole rows of `row_elements` each; `rows`: their bytes as `dtype`.
  virtual void from_f32(DType dtype, std::uint64_t row_elements, std::span<const float> values,
                        std::span<std::byte> rows) const = 0;
};

// --- Applying in place, and undoing ------------------------------------------------------

struct LoraApplyOptions {
  unsigned workers = 2;  // tensors patched in parallel
  // f32 working space per worker: rows are patched in tiles of this many bytes, so patching
  // never holds more than a tile (plus the LoRA module's factors) in f32 per worker. A
  // quantized tensor's tiles are whole rows, at least one.
  std::size_t tile_bytes = std::size_t{1} << 20;
  // Patches quantized base tensors; without it they are refused.
  std::shared_ptr<const LoraQuantCodec> quantized;
};

using LoraId = std::uint64_t;

// Patches the tensors of a LoadedModel in place and takes patches back out. Patched tensors
// must be writable (loaded buffers, or mapped copy-on-write: see mark_lora_targets) and
// f32, f16 or bf16, or quantized with LoraApplyOptions::quantized. The model and loaded
// model must outlive the patcher; one thread at a time.
class LoraPatcher {
 public:
  LoraPatcher(const Model& base, LoadedModel& loaded, LoraApplyOptions options = {});
  ~LoraPatcher();
  LoraPatcher(const LoraPatcher&) = delete;
  LoraPatcher& operator=(const LoraPatcher&) = delete;

  // W += scale * delta for every target (on its rows only: a slice of a fused tensor leaves
  // the other rows untouched), written back in the tensor's own type. Everything is checked
  // before the first byte is written: Error(not_found) for a target not loaded,
  // Error(invalid_argument) for one that is not writable, whose [rows, cols] are not the
  // tensor's, or whose rows are out of range or do not fit its module's factors (naming the
  // tensor and the LoRA file), Error(unsupported) "quantized base tensor X needs the ggml
  // adapter" without a codec, and for a quantized tensor whose rows are not whole blocks or
  // whose type the codec refuses. An I/O error reading the LoRA midway undoes what was
  // written and is rethrown.
  LoraId apply(const LoraUse& use);

  // Takes the given applications out: mapped tensors drop their private pages (the file's
  // bytes come back without a read) and get the LoRAs that stay re-applied, as do the parts
  // of neighbouring tensors that shared those pages; loaded tensors are read from the file
  // again. Error(not_found) for an id that is not applied (nothing changes then). Each base
  // file the applications touched is checked first against the identity it had when opened
  // (device, inode, size, mtime): a file that was truncated, rewritten or replaced since is
  // Error(io) naming it, and nothing is undone, so patched pages stay rather than dropping
  // to a file that would give other weights or SIGBUS. (When apply fails on such a file, its
  // rollback is refused the same way and the application stays listed in applied().)
  void undo(std::span<const LoraId> ids);
  void undo(LoraId id) { undo(std::span<const LoraId>(&id, 1)); }
  void undo_all();

  std::vector<LoraId> applied() const;  // in application order

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// --- Runtime deltas ------------------------------------------------------------------------

// What an engine adds to y = W x for one base tensor, W seen as a [base_rows, cols] matrix:
//   y[row_begin + i] += scale * (up (down x))[i]   for i in [0, rows)
// (for a diff, `full` holds the [rows, cols] difference instead: rank 0, up and down empty,
// y[row_begin + i] += scale * (full x)[i]). A module on the whole tensor has row_begin 0 and
// rows = base_rows; one on a slice of a fused tensor (q, k or v of a fused qkv, the MLP part
// of Flux's linear1) adds to those rows of y only. Factors are f32, row-major; a LoCon mid
// factor is folded into `down`.
struct LoraDelta {
  std::uint64_t rows = 0;  // rows of y the delta adds to (up's rows)
  std::uint64_t cols = 0;
  std::uint64_t rank = 0;
  std::vector<float> down;  // [rank, cols]
  std::vector<float> up;    // [rows, rank]
  std::vector<float> full;  // [rows, cols], diffs only
  float scale = 0;
  std::uint64_t row_begin = 0;  // the first of them
  std::uint64_t base_rows = 0;  // rows of W; row_begin + rows <= base_rows
};

// Per base tensor, its deltas in `uses` order. The base weights are not touched (a read-only
// mapping serves). Throws Error(invalid_argument) naming the tensor and the LoRA file for a
// target whose rows are out of range or do not fit its module's factors (checked for every
// target before any factor is read), and what reading the LoRA files throws.
std::map<std::string, std::vector<LoraDelta>> lora_runtime_deltas(std::span<const LoraUse> uses);

// --- Merging into a file -------------------------------------------------------------------

struct LoraMergeOptions {
  FileFormat format = FileFormat::safetensors;  // safetensors or gguf
  std::size_t chunk_bytes = kDefaultWriteChunkBytes;
  // Patches quantized base tensors (GGUF output keeps their type); without it they are refused.
  std::shared_ptr<const LoraQuantCodec> quantized;
};

// Writes base + every LoRA of `uses` (applied in order, as LoraPatcher would) to `path`,
// streaming: one chunk of the base and the current tensor's LoRA factors in memory at a
// time. Metadata of the base is kept where the output format can hold it (strings into a
// safetensors header). Everything is checked before the first byte is written: Error(
// not_found) for a target the base does not have, Error(invalid_argument) for one whose rows
// are out of range or do not fit its module's factors or the base's shape, Error(unsupported)
// for a quantized target without a codec (as LoraPatcher::apply), and Error(invalid_argument)
// naming `path` when it is a file of the base or a LoRA file under any name (a hard link, a
// symlink). Then what the writer throws. `path` is replaced as write_safetensors does (a
// temporary file renamed into place when complete).
WrittenFile write_merged_model(const Model& base, std::span<const LoraUse> uses,
                               const std::string& path, const LoraMergeOptions& options = {});

}  // namespace weightmap
WEIGHTMAP_API_END
