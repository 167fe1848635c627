// The copy workers' read-ahead window (src/load/read_ahead.hpp): which bytes are asked into
// the page cache ahead of the pieces workers take.
#include "load/read_ahead.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <initializer_list>
#include <mutex>
#include <thread>
#include <vector>

namespace weightmap::loader {
namespace {

constexpr std::uint64_t kKiB = 1024;

// Two files of back-to-back pieces of odd sizes, one larger than the window.
std::vector<ReadRange> odd_pieces() {
  std::vector<ReadRange> pieces;
  std::uint64_t at = 77;
  for (const std::uint64_t bytes :
       std::initializer_list<std::uint64_t>{1, 640, 4097, 300 * kKiB + 3, 7, 2 * kKiB + 1}) {
    pieces.push_back({0, at, bytes});
    at += bytes;
  }
  at = 5;
  for (const std::uint64_t bytes :
       std::initializer_list<std::uint64_t>{129 * kKiB, 33, 3, 64 * kKiB - 1, 11}) {
    pieces.push_back({1, at, bytes});
    at += bytes;
  }
  return pieces;
}

// How many times each byte of each file (both under 1 MiB) was named.
struct Counts {
  std::vector<std::vector<int>> files{2, std::vector<int>(1 << 20, 0)};

  void add(const std::vector<ReadRange>& ranges) {
    for (const ReadRange& range : ranges) {
      for (std::uint64_t b = range.offset; b < range.offset + range.bytes; ++b) {
        ++files.at(range.file).at(b);
      }
    }
  }
};

TEST(ReadAhead, NamesEveryByteOfEveryLaterPieceOnceWhenTakenInOrder) {
  const auto pieces = odd_pieces();
  ReadAhead ahead(pieces, 100 * kKiB);
  Counts counts;
  for (std::size_t i = 0; i < pieces.size(); ++i) counts.add(ahead.advance(i));
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    for (std::uint64_t b = pieces[i].offset; b < pieces[i].offset + pieces[i].bytes; ++b) {
      auto& n = counts.files[pieces[i].file][b];
      ASSERT_EQ(n, i == 0 ? 0 : 1) << "piece " << i << " byte " << b;
      n = 0;
    }
  }
  for (const auto& file : counts.files) {
    EXPECT_EQ(std::count(file.begin(), file.end(), 0), static_cast<long>(file.size()))
        << "bytes no piece reads were named";
  }
}

TEST(ReadAhead, NamesOnlyPiecesStartingWithinTheWindowPastTheTakenOne) {
  const std::vector<ReadRange> pieces = {{0, 0, 10 * kKiB},
                                         {0, 10 * kKiB, 10 * kKiB},
                                         {0, 20 * kKiB, 10 * kKiB},
                                         {0, 30 * kKiB, 10 * kKiB},
                                         {0, 40 * kKiB, 10 * kKiB}};
  ReadAhead ahead(pieces, 15 * kKiB);
  // Past piece 0 (ends at 10 KiB): pieces starting before 25 KiB, i.e. 1 and 2, in one range.
  auto named = ahead.advance(0);
  ASSERT_EQ(named.size(), 1u);
  EXPECT_EQ(named[0].offset, 10 * kKiB);
  EXPECT_EQ(named[0].bytes, 20 * kKiB);
  // Piece 1 moves the window to 35 KiB: only piece 3 is new.
  named = ahead.advance(1);
  ASSERT_EQ(named.size(), 1u);
  EXPECT_EQ(named[0].offset, 30 * kKiB);
  EXPECT_EQ(named[0].bytes, 10 * kKiB);
  // A piece taken late (another worker was faster) names nothing again.
  EXPECT_TRUE(ahead.advance(0).empty());
  EXPECT_EQ(ahead.advance(3).size(), 1u);  // piece 4
  EXPECT_TRUE(ahead.advance(4).empty());   // the last piece has nothing after it
  EXPECT_TRUE(ahead.advance(99).empty());
}

TEST(ReadAhead, SkipsPiecesWithoutBytesAndKeepsFilesApart) {
  // Piece 1 is read with O_DIRECT (no bytes to ask for); pieces 2 and 3 are in other files
  // at the same offsets, so they are never merged across files.
  const std::vector<ReadRange> pieces = {
      {0, 0, 4096}, {0, 4096, 0}, {1, 8192, 4096}, {2, 12288, 4096}, {2, 16384 + 100, 50}};
  ReadAhead ahead(pieces, 1 << 20);
  const auto named = ahead.advance(0);
  ASSERT_EQ(named.size(), 2u);
  EXPECT_EQ(named[0].file, 1u);
  EXPECT_EQ(named[0].offset, 8192u);
  EXPECT_EQ(named[0].bytes, 4096u);
  // A gap of 100 bytes (GGUF padding) inside one file is asked for with its neighbours.
  EXPECT_EQ(named[1].file, 2u);
  EXPECT_EQ(named[1].offset, 12288u);
  EXPECT_EQ(named[1].bytes, 16384u + 100 + 50 - 12288);
}

TEST(ReadAhead, AZeroWindowNamesNothing) {
  ReadAhead ahead(odd_pieces(), 0);
  for (std::size_t i = 0; i < 11; ++i) EXPECT_TRUE(ahead.advance(i).empty());
}

TEST(ReadAhead, WorkersTakingPiecesAtOnceNameEachByteAtMostOnce) {
  std::vector<ReadRange> pieces;
  for (std::uint64_t i = 0; i < 2000; ++i) pieces.push_back({0, i * 1000, 1000});
  for (int round = 0; round < 20; ++round) {
    ReadAhead ahead(pieces, 7 * 1000 + 1);
    std::atomic<std::size_t> next{0};
    std::mutex mutex;
    std::vector<ReadRange> named;
    std::vector<std::thread> workers;
    for (int w = 0; w < 4; ++w) {
      workers.emplace_back([&] {
        for (std::size_t i; (i = next++) < pieces.size();) {
          auto got = ahead.advance(i);
          std::lock_guard lock(mutex);
          named.insert(named.end(), got.begin(), got.end());
        }
      });
    }
    for (auto& worker : workers) worker.join();
    std::sort(named.begin(), named.end(),
              [](const ReadRange& a, const ReadRange& b) { return a.offset < b.offset; });
    for (std::size_t i = 1; i < named.size(); ++i) {
      ASSERT_LE(named[i - 1].offset + named[i - 1].bytes, named[i].offset) << "named twice";
    }
    ASSERT_FALSE(named.empty());
    EXPECT_LE(named.back().offset + named.back().bytes, 2000u * 1000);
    EXPECT_GE(named.front().offset, 1000u);  // the first piece is never named
  }
}

}  // namespace
}  // namespace weightmap::loader
