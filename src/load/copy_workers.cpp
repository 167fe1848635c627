#include "load/copy_workers.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "io/aligned_buffer.hpp"
#include "io/page_cache.hpp"
#include "load/read_ahead.hpp"
#include "weightmap/convert.hpp"
#include "weightmap/error.hpp"

namespace weightmap::loader {
namespace {

// Same-type reads go straight into the destination in pieces this big, so progress and
// cancellation stay responsive on multi-GiB tensors.
constexpr std::size_t kDirectChunk = std::size_t{16} << 20;
// Conversions read through staging in pieces this big (see convert_through_staging): on a
// 2-core VM, f16 -> f32 of a 2 GiB tensor into pre-faulted memory ran at 0.66-0.74x of read()
// with 64 KiB to 8 MiB pieces, 0.49-0.55x with 32 MiB ones. At 2 MiB an f16 -> f32 piece is
// also big enough (4 MiB out) for the kernels' streaming stores.
constexpr std::size_t kConvertChunk = std::size_t{2} << 20;
// How many bytes of queue past the piece a worker just took are asked into the page cache
// (POSIX_FADV_WILLNEED, see read_ahead.hpp), on top of the kernel's own readahead: on a cold
// cache the disk has more to do while workers copy or convert. Page cache only, and only
// bytes the load reads anyway. Figures in docs/loading.md.
constexpr std::uint64_t kReadAheadWindow = std::uint64_t{32} << 20;

// One worker's staging: grows to the largest chunk it needs, never past its limit.
class Staging {
 public:
  Staging(std::size_t limit, std::atomic<std::uint64_t>& total, std::atomic<std::uint64_t>& peak)
      : limit_(limit), total_(total), peak_(peak) {}
  ~Staging() { total_ -= capacity_; }
  Staging(const Staging&) = delete;
  Staging& operator=(const Staging&) = delete;

  std::size_t limit() const noexcept { return limit_; }

  std::span<std::byte> get(std::size_t n) {
    if (n > capacity_) {
      const std::size_t block = io::DirectReader::kBlock;
      const std::size_t rounded = (n + block - 1) / block * block;
      data_.reset();
      total_ -= capacity_;
      capacity_ = 0;
      data_ = io::allocate_aligned(rounded, block);
      capacity_ = rounded;
      const std::uint64_t now = total_ += capacity_;
      std::uint64_t seen = peak_.load();
      while (now > seen && !peak_.compare_exchange_weak(seen, now)) {
      }
    }
    return {data_.get(), n};
  }

 private:
  std::size_t limit_;
  std::atomic<std::uint64_t>& total_;
  std::atomic<std::uint64_t>& peak_;
  std::shared_ptr<std::byte> data_;
  std::size_t capacity_ = 0;
};

// A byte range of one job, [begin, end) relative to the job's offset: what a worker takes
// from the queue. Large tensors are cut into several, so every worker has work when one
// tensor is most of the bytes (an 8 GiB model whose first tensor is 2 GiB).
struct Piece {
  std::size_t job = 0;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

class CopyRun {
 public:
  CopyRun(std::span<const CopyJob> jobs, std::span<const CopySource> sources,
          const CopySettings& settings)
      : jobs_(jobs), sources_(sources), settings_(settings) {
    for (const auto& job : jobs) progress_.bytes_total += job.file_bytes;
    progress_.tensors_total = jobs.size();
  }

  CopyStats run() {
    unsigned workers = std::max(1U, settings_.workers);
    const std::size_t fits =
        std::max<std::size_t>(1, settings_.staging_bytes_cap / kMinStagingPerWorker);
    workers = static_cast<unsigned>(std::min<std::size_t>(workers, fits));
    staging_limit_ = std::max(kMinStagingPerWorker, settings_.staging_bytes_cap / workers);
    cut_pieces(workers > 1 ? staging_limit_ : 0);
    workers = static_cast<unsigned>(std::min<std::size_t>(workers, pieces_.size()));
    if (workers == 0) return {};

    if (cancel_requested()) throw cancelled_error();
    if (workers == 1) {
      work();
    } else {
      std::vector<std::thread> threads;
      threads.reserve(workers);
      try {
        for (unsigned i = 0; i < workers; ++i) threads.emplace_back([this] { work(); });
      } catch (const std::system_error& e) {
        stop_ = true;
        for (auto& thread : threads) thread.join();
        throw Error(ErrorCode::io, fmt::format("cannot start a copy worker: {}", e.what()));
      }
      for (auto& thread : threads) thread.join();
    }
    if (error_) std::rethrow_exception(error_);
    if (cancelled_) throw cancelled_error();
    return {workers, peak_staging_.load()};
  }

 private:
  static Error cancelled_error() { return Error(ErrorCode::cancelled, "the load was cancelled"); }

  bool cancel_requested() const {
    return settings_.cancel != nullptr && settings_.cancel->load(std::memory_order_relaxed);
  }

  // One piece per job, except contiguous tensors written to a buffer, which are cut into
  // pieces of `piece_bytes` (whole elements) when that is non-zero. A sink takes its pieces
  // in order from one thread, and a strided tensor is gathered at once: neither is cut.
  void cut_pieces(std::uint64_t piece_bytes) {
    pieces_.reserve(jobs_.size());
    for (std::size_t i = 0; i < jobs_.size(); ++i) {
      const CopyJob& job = jobs_[i];
      const bool cut = piece_bytes > 0 && job.sink == nullptr && job.strides.empty() &&
                       job.file_bytes > piece_bytes;
      if (!cut) {
        pieces_.push_back({i, 0, job.file_bytes});
        continue;
      }
      // Conversions are between plain types: one element per block.
      const std::uint64_t element = job.from != job.to ? *dtype_bytes_for(job.from, 1) : 1;
      const std::uint64_t step = std::max(element, piece_bytes / element * element);
      for (std::uint64_t begin = 0; begin < job.file_bytes; begin += step) {
        pieces_.push_back({i, begin, std::min(job.file_bytes, begin + step)});
      }
    }
    std::vector<ReadRange> reads;
    reads.reserve(pieces_.size());
    for (const Piece& piece : pieces_) {
      const CopyJob& job = jobs_[piece.job];
      // O_DIRECT bypasses the cache; a strided tensor reads more than its own bytes.
      const bool cached = sources_[job.file].direct == nullptr && job.strides.empty();
      reads.push_back({job.file, job.offset + piece.begin, cached ? piece.end - piece.begin : 0});
    }
    read_ahead_ = std::make_unique<ReadAhead>(std::move(reads), kReadAheadWindow);
    pieces_left_ = std::make_unique<std::atomic<std::size_t>[]>(jobs_.size());
    for (const Piece& piece : pieces_) ++pieces_left_[piece.job];
  }

  void work() {
    Staging staging(staging_limit_, staging_total_, peak_staging_);
    while (!stop_) {
      const std::size_t index = next_++;
      if (index >= pieces_.size()) break;
      const Piece& piece = pieces_[index];
      const CopyJob& job = jobs_[piece.job];
      try {
        read_ahead_of(index);
        copy(piece, staging);
      } catch (Error& e) {
        record(std::make_exception_ptr(
            e.add_context({sources_[job.file].reader->name(), printable(job.name), job.offset})));
      } catch (...) {
        record(std::current_exception());
      }
    }
  }

  // Asks the kernel to start reading the pieces within the window past the one just taken.
  // A hint: a filesystem that refuses it is read as it comes.
  void read_ahead_of(std::size_t index) {
    for (const ReadRange& range : read_ahead_->advance(index)) {
      const io::FileReader& reader = *sources_[range.file].reader;
      try {
        reader.advise(range.offset, range.bytes, io::Advice::willneed);
      } catch (const Error&) {
        return;
      }
    }
  }

  void record(std::exception_ptr error) {
    std::lock_guard lock(mutex_);
    if (!error_) error_ = std::move(error);
    stop_ = true;
  }

  // Counts a finished chunk of `piece` (the piece's last when `piece_done`); false when the
  // load must stop. A tensor is done when the last of its pieces is.
  bool chunk_done(const Piece& piece, std::uint64_t bytes, bool piece_done) {
    if (stop_) return false;
    const bool tensor_done = piece_done && --pieces_left_[piece.job] == 0;
    std::lock_guard lock(mutex_);
    progress_.bytes_done += bytes;
    if (tensor_done) ++progress_.tensors_done;
    const bool go_on =
        !cancel_requested() &&
        (settings_.progress == nullptr || !*settings_.progress || (*settings_.progress)(progress_));
    if (!go_on) {
      cancelled_ = true;
      stop_ = true;
    }
    return go_on;
  }

  void copy(const Piece& piece, Staging& staging) {
    const CopyJob& job = jobs_[piece.job];
    const CopySource& source = sources_[job.file];
    if (job.file_bytes == 0) {
      chunk_done(piece, 0, true);
      return;
    }
    const bool finished = !job.strides.empty()  ? gather_strided(piece, source, staging)
                          : job.from != job.to  ? convert_through_staging(piece, source, staging)
                          : source.direct       ? copy_direct(piece, source, staging)
                          : job.sink != nullptr ? copy_to_sink(piece, source, staging)
                                                : copy_straight(piece, source);
    if (finished && source.drop_behind) {
      // Per piece, so a multi-GiB tensor does not sit in the cache whole before it goes.
      const std::uint64_t page = io::page_size();
      const std::uint64_t begin = (job.offset + piece.begin) / page * page;
      source.reader->advise(begin, job.offset + piece.end - begin, io::Advice::dontneed);
    }
  }

  // pread straight into the destination: no staging at all. A fresh destination is not
  // prefaulted here: the kernel's copy takes its faults more cheaply than a populate call
  // ahead of it (1 GiB from the page cache into fresh memory in 16 MiB reads: 0.42-0.46 s
  // of CPU, against 0.50-0.55 s with MADV_POPULATE_WRITE first).
  bool copy_straight(const Piece& piece, const CopySource& source) {
    const CopyJob& job = jobs_[piece.job];
    for (std::uint64_t done = piece.begin; done < piece.end;) {
      const auto n =
          static_cast<std::size_t>(std::min<std::uint64_t>(kDirectChunk, piece.end - done));
      source.reader->read_at(job.offset + done, job.destination.subspan(done, n));
      done += n;
      if (!chunk_done(piece, n, done == piece.end)) return false;
    }
    return true;
  }

  // pread through staging into the caller's sink (never cut: one piece, in order).
  bool copy_to_sink(const Piece& piece, const CopySource& source, Staging& staging) {
    const CopyJob& job = jobs_[piece.job];
    for (std::uint64_t done = piece.begin; done < piece.end;) {
      const auto n =
          static_cast<std::size_t>(std::min<std::uint64_t>(staging.limit(), piece.end - done));
      const auto buffer = staging.get(n);
      source.reader->read_at(job.offset + done, buffer);
      (*job.sink)(buffer, done);
      done += n;
      if (!chunk_done(piece, n, done == piece.end)) return false;
    }
    return true;
  }

  bool copy_direct(const Piece& piece, const CopySource& source, Staging& staging) {
    const CopyJob& job = jobs_[piece.job];
    const std::size_t chunk = staging.limit() - 2 * io::DirectReader::kBlock;
    for (std::uint64_t done = piece.begin; done < piece.end;) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, piece.end - done));
      const auto bytes =
          source.direct->read(job.offset + done, n, staging.get(io::DirectReader::staging_for(n)));
      if (job.sink != nullptr) {
        (*job.sink)(bytes, done);
      } else {
        const auto out = job.destination.subspan(done, n);
        if (job.fresh_destination) io::prefault_for_writing(out.data(), out.size());
        std::memcpy(out.data(), bytes.data(), n);
      }
      done += n;
      if (!chunk_done(piece, n, done == piece.end)) return false;
    }
    return true;
  }

  // Whole elements per chunk: convertible types are plain (one element per block), and
  // pieces are cut at whole elements.
  bool convert_through_staging(const Piece& piece, const CopySource& source, Staging& staging) {
    const CopyJob& job = jobs_[piece.job];
    const std::uint64_t from_size = *dtype_bytes_for(job.from, 1);
    const std::uint64_t to_size = *dtype_bytes_for(job.to, 1);
    const std::size_t usable = staging.limit() - (source.direct ? 2 * io::DirectReader::kBlock : 0);
    // A sink needs the converted piece in staging too, after the read part.
    const std::uint64_t per_element = from_size + (job.sink != nullptr ? to_size : 0);
    // pread chunks small enough to stay in the core's cache until converted: a chunk the
    // size of the whole share goes out to memory and comes back. O_DIRECT wants big reads.
    const std::size_t chunk = source.direct ? usable : std::min(usable, kConvertChunk);
    const std::uint64_t per_chunk = std::max<std::uint64_t>(1, chunk / per_element);
    const std::uint64_t last = piece.end / from_size;
    for (std::uint64_t first = piece.begin / from_size; first < last;) {
      const std::uint64_t count = std::min(per_chunk, last - first);
      const auto n = static_cast<std::size_t>(count * from_size);
      const auto out_bytes = static_cast<std::size_t>(count * to_size);
      const std::uint64_t at = job.offset + first * from_size;
      const std::size_t read_part = source.direct ? io::DirectReader::staging_for(n) : n;
      const auto area = staging.get(read_part + (job.sink != nullptr ? out_bytes : 0));
      std::span<const std::byte> staged;
      if (source.direct) {
        staged = source.direct->read(at, n, area.first(read_part));
      } else {
        source.reader->read_at(at, area.first(n));
        staged = area.first(n);
      }
      if (job.sink != nullptr) {
        const auto converted = area.subspan(read_part, out_bytes);
        convert(job.from, staged, job.to, converted, count);
        (*job.sink)(converted, first * to_size);
      } else {
        const auto out =
            job.destination.subspan(static_cast<std::size_t>(first * to_size), out_bytes);
        if (job.fresh_destination) io::prefault_for_writing(out.data(), out.size());
        convert(job.from, staged, job.to, out, count);
      }
      first += count;
      if (!chunk_done(piece, n, first == last)) return false;
    }
    return true;
  }

  // Reads the bytes the strides reach, then gathers the elements in row-major order (and
  // converts them when the types differ).
  bool gather_strided(const Piece& piece, const CopySource& source, Staging& staging) {
    const CopyJob& job = jobs_[piece.job];
    const auto element = static_cast<std::size_t>(*dtype_bytes_for(job.from, 1));
    std::uint64_t reach = 1;
    for (std::size_t i = 0; i < job.shape.size(); ++i) {
      if (job.shape[i] == 0) return chunk_done(piece, job.file_bytes, true);
      reach += (job.shape[i] - 1) * job.strides[i];  // format/ proved this fits the file
    }
    const auto span_bytes = static_cast<std::size_t>(reach * element);
    std::span<const std::byte> staged;
    if (source.direct) {
      staged = source.direct->read(job.offset, span_bytes,
                                   staging.get(io::DirectReader::staging_for(span_bytes)));
    } else {
      const auto buffer = staging.get(span_bytes);
      source.reader->read_at(job.offset, buffer);
      staged = buffer;
    }
    std::vector<std::byte> contiguous;
    std::span<std::byte> out = job.destination;
    if (job.from != job.to || job.sink != nullptr) {
      contiguous.resize(static_cast<std::size_t>(job.elements) * element);
      out = contiguous;
    }
    std::vector<std::uint64_t> index(job.shape.size(), 0);
    std::uint64_t at = 0;  // element offset of `index` in the file
    for (std::uint64_t n = 0; n < job.elements; ++n) {
      std::memcpy(out.data() + n * element, staged.data() + at * element, element);
      for (std::size_t d = index.size(); d-- > 0;) {  // odometer, last dimension fastest
        if (++index[d] < job.shape[d]) {
          at += job.strides[d];
          break;
        }
        at -= (job.shape[d] - 1) * job.strides[d];
        index[d] = 0;
      }
    }
    if (job.sink == nullptr) {
      if (job.from != job.to) convert(job.from, contiguous, job.to, job.destination, job.elements);
    } else if (job.from == job.to) {
      (*job.sink)(contiguous, 0);
    } else {
      std::vector<std::byte> converted(
          static_cast<std::size_t>(job.elements * *dtype_bytes_for(job.to, 1)));
      convert(job.from, contiguous, job.to, converted, job.elements);
      (*job.sink)(converted, 0);
    }
    return chunk_done(piece, job.file_bytes, true);
  }

  std::span<const CopyJob> jobs_;
  std::span<const CopySource> sources_;
  const CopySettings& settings_;
  std::size_t staging_limit_ = kMinStagingPerWorker;

  std::vector<Piece> pieces_;  // the queue, in job order
  std::unique_ptr<ReadAhead> read_ahead_;
  std::unique_ptr<std::atomic<std::size_t>[]> pieces_left_;  // per job
  std::atomic<std::size_t> next_{0};
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> staging_total_{0};
  std::atomic<std::uint64_t> peak_staging_{0};

  std::mutex mutex_;  // guards the fields below
  std::exception_ptr error_;
  bool cancelled_ = false;
  LoadProgress progress_;
};

}  // namespace

CopyStats run_copy_jobs(std::span<const CopyJob> jobs, std::span<const CopySource> sources,
                        const CopySettings& settings) {
  if (jobs.empty()) return {};
  CopyRun run(jobs, sources, settings);
  return run.run();
}

}  // namespace weightmap::loader
