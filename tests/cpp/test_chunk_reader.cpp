// read_chunked / read_contiguous over files this test writes: chunk geometry (edges, several dimensions,
// row ranges), fields, and a bad chunk named by its index.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <numeric>
#include <string>

#include <unistd.h>

#include "ndshm/chunk_reader.hpp"

namespace {

using ndshm::filter;

struct temp_file {
  std::string path = "/tmp/ndshm-gtest-" + std::to_string(::getpid()) + "-" +
                     ::testing::UnitTest::GetInstance()->current_test_info()->name();
  ~temp_file() { std::remove(path.c_str()); }
};

/// The dataset shape x chunk of int32 values 0, 1, 2, ... chunked and encoded, appended to a file;
/// returns the stored chunks.
std::vector<ndshm::stored_chunk> write_chunked(const std::string &path, std::vector<std::int64_t> shape,
                                               std::vector<std::int64_t> chunk, const std::vector<filter> &pipeline) {
  std::ofstream file(path, std::ios::binary);
  file << "header"; // chunks start anywhere in the file
  std::vector<std::int64_t> strides(shape.size(), 1);
  for (std::size_t k = shape.size() - 1; k-- > 0;)
    strides[k] = strides[k + 1] * shape[k + 1];
  std::vector<std::int64_t> grid(shape.size()), at(shape.size(), 0);
  for (std::size_t k = 0; k < shape.size(); ++k)
    grid[k] = (shape[k] + chunk[k] - 1) / chunk[k];
  std::int64_t chunk_items = 1;
  for (auto c : chunk)
    chunk_items *= c;
  std::vector<ndshm::stored_chunk> chunks;
  ndshm::chunk_encoder encoder;
  std::uint64_t offset = 6;
  for (;;) {
    std::vector<std::int32_t> values(static_cast<std::size_t>(chunk_items), -1); // outside: padding
    for (std::int64_t i = 0; i < chunk_items; ++i) {
      std::int64_t rest = i, flat = 0;
      bool inside = true;
      for (std::size_t k = shape.size(); k-- > 0;) {
        const std::int64_t x = at[k] * chunk[k] + rest % chunk[k];
        rest /= chunk[k];
        inside = inside && x < shape[k];
        flat += x * strides[k];
      }
      if (inside)
        values[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(flat);
    }
    std::vector<std::byte> stored;
    const auto mask = encoder.encode(pipeline, std::as_bytes(std::span(values)), stored);
    file.write(reinterpret_cast<const char *>(stored.data()), static_cast<std::streamsize>(stored.size()));
    std::vector<std::int64_t> origin(shape.size());
    for (std::size_t k = 0; k < shape.size(); ++k)
      origin[k] = at[k] * chunk[k];
    chunks.push_back({offset, stored.size(), mask, origin});
    offset += stored.size();
    std::size_t k = shape.size();
    while (k-- > 0 && ++at[k] == grid[k])
      at[k] = 0;
    if (k == static_cast<std::size_t>(-1))
      break;
  }
  return chunks;
}

std::vector<std::int32_t> expected_rows(std::vector<std::int64_t> shape, std::int64_t begin, std::int64_t end) {
  std::int64_t row = 1;
  for (std::size_t k = 1; k < shape.size(); ++k)
    row *= shape[k];
  std::vector<std::int32_t> values(static_cast<std::size_t>((end - begin) * row));
  std::iota(values.begin(), values.end(), static_cast<std::int32_t>(begin * row));
  return values;
}

} // namespace

TEST(chunk_reader, chunks_of_any_shape_land_where_they_belong) {
  temp_file file;
  struct layout {
    std::vector<std::int64_t> shape, chunk;
  };
  for (const auto &[shape, chunk] : std::vector<layout>{{{1000}, {64}},
                                                         {{1000}, {1000}},
                                                         {{37, 11}, {5, 11}},
                                                         {{37, 11}, {4, 3}},
                                                         {{9, 8, 7}, {2, 8, 7}},
                                                         {{9, 8, 7}, {4, 3, 7}},
                                                         {{9, 8, 7}, {10, 10, 10}}}) {
    for (const auto &pipeline : std::vector<std::vector<filter>>{{}, {{2, {4}}, {1, {1}}}}) {
      auto chunks = write_chunked(file.path, shape, chunk, pipeline);
      for (auto [begin, end] : {std::pair<std::int64_t, std::int64_t>{0, shape[0]}, {3, shape[0] - 1}, {5, 5}}) {
        for (unsigned threads : {1u, 3u}) {
          std::vector<std::int32_t> out(expected_rows(shape, begin, end).size(), -7);
          ndshm::read_chunked(file.path, {shape, chunk, 4, begin, end}, pipeline, chunks, {},
                              std::as_writable_bytes(std::span(out)), threads);
          EXPECT_EQ(out, expected_rows(shape, begin, end))
              << shape.size() << "-d, chunk[0] " << chunk[0] << ", rows " << begin << ":" << end;
        }
      }
    }
  }
}

TEST(chunk_reader, fields_pick_bytes_of_each_element) {
  temp_file file;
  // 4-byte elements seen as two 2-byte fields; the output keeps the second only.
  auto chunks = write_chunked(file.path, {100}, {30}, {{1, {1}}});
  ndshm::element_map second{{{2, 0, 2}}, 2};
  std::vector<std::uint16_t> out(100);
  ndshm::read_chunked(file.path, {{100}, {30}, 4, 0, 100}, std::vector<filter>{{1, {1}}}, chunks, second,
                      std::as_writable_bytes(std::span(out)), 2);
  for (std::uint16_t i = 0; i < 100; ++i)
    EXPECT_EQ(out[i], 0) << i; // the high halves of small little-endian int32s
  ndshm::element_map first{{{0, 0, 2}}, 2};
  ndshm::read_chunked(file.path, {{100}, {30}, 4, 0, 100}, std::vector<filter>{{1, {1}}}, chunks, first,
                      std::as_writable_bytes(std::span(out)), 2);
  for (std::uint16_t i = 0; i < 100; ++i)
    EXPECT_EQ(out[i], i);
}

TEST(chunk_reader, a_bad_chunk_is_named_and_nothing_else_is_claimed) {
  temp_file file;
  std::vector<filter> pipeline = {{1, {1}}};
  auto chunks = write_chunked(file.path, {1000}, {100}, pipeline);
  chunks[4].size /= 2; // a chunk cut short
  std::vector<std::int32_t> out(1000);
  try {
    ndshm::read_chunked(file.path, {{1000}, {100}, 4, 0, 1000}, pipeline, chunks, {},
                        std::as_writable_bytes(std::span(out)), 2);
    FAIL() << "no error";
  } catch (const ndshm::chunk_error &e) {
    EXPECT_EQ(e.chunk, 4u);
    EXPECT_EQ(e.reason, "deflate data is corrupt");
  }
  chunks[4].size *= 2;
  chunks[7].file_offset += 1u << 20; // past the end of the file
  try {
    ndshm::read_chunked(file.path, {{1000}, {100}, 4, 0, 1000}, pipeline, chunks, {},
                        std::as_writable_bytes(std::span(out)), 1);
    FAIL() << "no error";
  } catch (const ndshm::chunk_error &e) {
    EXPECT_EQ(e.chunk, 7u);
    EXPECT_NE(e.reason.find("the file ends"), std::string::npos) << e.reason;
  }
  EXPECT_THROW(ndshm::read_chunked(file.path, {{1000}, {100}, 4, 0, 1000}, pipeline, chunks, {},
                                   std::as_writable_bytes(std::span(out)).first(100), 1),
               std::invalid_argument);
  EXPECT_THROW(ndshm::read_chunked(file.path + ".missing", {{1000}, {100}, 4, 0, 1000}, pipeline, chunks, {},
                                   std::as_writable_bytes(std::span(out)), 1),
               std::system_error);
}

TEST(chunk_reader, contiguous_rows_and_fields) {
  temp_file file;
  write_chunked(file.path, {3, 500000}, {3, 500000}, {}); // one chunk, no filters: the plain layout
  for (unsigned threads : {1u, 2u}) {
    std::vector<std::int32_t> out(2 * 500000);
    ndshm::read_contiguous(file.path, 6, {{3, 500000}, {}, 4, 1, 3}, {}, std::as_writable_bytes(std::span(out)),
                           threads);
    EXPECT_EQ(out, expected_rows({3, 500000}, 1, 3));
  }
  std::vector<std::uint16_t> low(500000);
  ndshm::read_contiguous(file.path, 6, {{3, 500000}, {}, 4, 0, 1}, {{{0, 0, 2}}, 2},
                         std::as_writable_bytes(std::span(low)), 2);
  for (std::size_t i = 0; i < low.size(); i += 9999)
    EXPECT_EQ(low[i], static_cast<std::uint16_t>(i));
  std::vector<std::int32_t> out(500000);
  EXPECT_THROW(ndshm::read_contiguous(file.path, 6 + 4, {{3, 500000}, {}, 4, 2, 3}, {},
                                      std::as_writable_bytes(std::span(out)), 1),
               std::system_error); // the file ends 4 bytes early
}
