// HDF5's codecs: fletcher32 against sums libhdf5 wrote, shuffle, and every decodable pipeline round trip
// through chunk_encoder, with the failures a damaged chunk gives.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "ndshm/codecs.hpp"

namespace {

using ndshm::decode_status;
using ndshm::filter;
namespace id = ndshm::filter_id;

std::vector<std::byte> bytes_of(std::size_t n, unsigned seed = 1) {
  // Compressible but not trivial: small integers, as coverage counts are.
  std::mt19937 random(seed);
  std::vector<std::byte> data(n);
  for (auto &b : data)
    b = static_cast<std::byte>(random() % 7);
  return data;
}

std::vector<std::byte> decode(const std::vector<filter> &pipeline, std::uint32_t mask,
                              const std::vector<std::byte> &in, std::size_t size, decode_status *status) {
  ndshm::chunk_decoder decoder;
  decoder.reserve(size);
  std::vector<std::byte> out(size);
  *status = decoder.decode(pipeline, mask, in, out).status;
  return out;
}

} // namespace

TEST(codecs, fletcher32_matches_the_sums_libhdf5_stores) {
  // Chunks of bytes i * 7 % 256 written by h5py with fletcher32=True; the sums are their last 4 bytes.
  for (auto [n, sum] : {std::pair<std::size_t, std::uint32_t>{10, 0x19828cafu}, {11, 0xec31d2afu}, {1000, 0xf5fc3ce7u}}) {
    std::vector<std::byte> data(n);
    for (std::size_t i = 0; i < n; ++i)
      data[i] = static_cast<std::byte>(i * 7 % 256);
    EXPECT_EQ(ndshm::fletcher32(data), sum) << n << " bytes";
  }
}

TEST(codecs, unshuffle_inverts_shuffle_for_any_element_and_tail) {
  for (std::size_t element : {1u, 2u, 3u, 4u, 8u, 13u, 16u, 24u})
    for (std::size_t size : {0u, 1u, 5u, 64u, 1000u, 4099u}) {
      std::vector<std::byte> data(size);
      for (std::size_t i = 0; i < size; ++i)
        data[i] = static_cast<std::byte>(i * 31 + element);
      std::vector<std::byte> shuffled(size), back(size);
      ndshm::shuffle(data.data(), shuffled.data(), size, element);
      ndshm::unshuffle(shuffled.data(), back.data(), size, element);
      EXPECT_EQ(back, data) << element << "-byte elements, " << size << " bytes";
      if (element == 4 && size == 64) // byte 0 of each element first
        EXPECT_EQ(shuffled[1], data[4]);
    }
}

TEST(codecs, every_decodable_pipeline_round_trips) {
  const std::size_t size = 1 << 16;
  const auto data = bytes_of(size);
  std::vector<std::vector<filter>> pipelines = {
      {},
      {{id::deflate, {1}}},
      {{id::shuffle, {8}}, {id::deflate, {4}}},
      {{id::shuffle, {13}}, {id::deflate, {9}}, {id::fletcher32, {}}},
      {{id::fletcher32, {}}},
      {{id::fletcher32, {}}, {id::shuffle, {4}}},
  };
  for (auto extra : {id::lzf, id::zstd, id::blosc})
    if (ndshm::decodes(extra)) {
      std::vector<std::uint32_t> values = extra == id::blosc ? std::vector<std::uint32_t>{2, 2, 8, size, 5, 1, 1}
                                                             : std::vector<std::uint32_t>{3};
      pipelines.push_back({{extra, values}});
      pipelines.push_back({{id::shuffle, {8}}, {extra, values}, {id::fletcher32, {}}});
    }
  ndshm::chunk_encoder encoder;
  for (const auto &pipeline : pipelines) {
    std::vector<std::byte> stored;
    const std::uint32_t mask = encoder.encode(pipeline, data, stored);
    EXPECT_EQ(mask, 0u);
    decode_status status;
    EXPECT_EQ(decode(pipeline, mask, stored, size, &status), data) << pipeline.size() << " filters";
    EXPECT_EQ(status, decode_status::ok);
  }
}

TEST(codecs, a_masked_filter_is_skipped) {
  const auto data = bytes_of(4096);
  std::vector<filter> pipeline = {{id::shuffle, {4}}, {id::deflate, {1}}};
  std::vector<std::byte> stored;
  ndshm::chunk_encoder().encode(std::vector<filter>{pipeline[0]}, data, stored); // deflate skipped
  decode_status status;
  EXPECT_EQ(decode(pipeline, 0b10, stored, data.size(), &status), data);
  EXPECT_EQ(status, decode_status::ok);
  if (ndshm::decodes(id::lzf)) { // random bytes do not shrink: lzf gives up, as h5py's filter does
    std::vector<std::byte> noise(4096);
    std::mt19937 random(7);
    for (auto &b : noise)
      b = static_cast<std::byte>(random());
    std::vector<filter> lzf = {{id::lzf, {}}};
    const std::uint32_t mask = ndshm::chunk_encoder().encode(lzf, noise, stored);
    EXPECT_EQ(mask, 1u);
    EXPECT_EQ(decode(lzf, mask, stored, noise.size(), &status), noise);
  }
}

TEST(codecs, damaged_chunks_say_what_failed) {
  const auto data = bytes_of(1 << 14);
  ndshm::chunk_encoder encoder;
  ndshm::chunk_decoder decoder;
  decoder.reserve(data.size());
  std::vector<std::byte> out(data.size());
  std::vector<std::byte> stored;

  std::vector<filter> checked = {{id::shuffle, {4}}, {id::deflate, {1}}, {id::fletcher32, {}}};
  encoder.encode(checked, data, stored);
  stored[stored.size() / 2] ^= std::byte{0x40};
  auto r = decoder.decode(checked, 0, stored, out);
  EXPECT_EQ(r.status, decode_status::checksum);
  EXPECT_EQ(ndshm::describe(r.status, r.filter), "fletcher32 checksum mismatch");

  std::vector<filter> deflate = {{id::deflate, {1}}};
  encoder.encode(deflate, data, stored);
  auto truncated = std::span<const std::byte>(stored).first(stored.size() / 2);
  r = decoder.decode(deflate, 0, truncated, out);
  EXPECT_EQ(r.status, decode_status::corrupt);
  EXPECT_EQ(ndshm::describe(r.status, r.filter), "deflate data is corrupt");
  EXPECT_EQ(decoder.decode(deflate, 0, stored, std::span<std::byte>(out).first(100)).status,
            decode_status::wrong_size);
  std::vector<std::byte> longer(data.size() + 1);
  EXPECT_EQ(decoder.decode(deflate, 0, stored, longer).status, decode_status::wrong_size);

  for (auto codec : {id::lzf, id::zstd, id::blosc})
    if (ndshm::decodes(codec)) {
      std::vector<filter> one = {{codec, {2, 2, 1, static_cast<std::uint32_t>(data.size()), 5, 1, 0}}};
      if (codec == id::zstd)
        one[0].values = {3};
      encoder.encode(one, data, stored);
      std::fill(stored.begin(), stored.end(), std::byte{0xff});
      EXPECT_NE(decoder.decode(one, 0, stored, out).status, decode_status::ok) << codec;
    }

  std::vector<filter> unknown = {{32008, {}}}; // bitshuffle: h5py's business
  EXPECT_FALSE(ndshm::decodes(32008));
  EXPECT_EQ(decoder.decode(unknown, 0, stored, out).status, decode_status::unsupported);
  EXPECT_THROW(encoder.encode(unknown, data, stored), std::invalid_argument);
}

TEST(codecs, decode_never_allocates_without_reserve) {
  // Two writing filters need scratch: without reserve() the decoder says so instead of allocating.
  const auto data = bytes_of(1024);
  std::vector<filter> pipeline = {{id::shuffle, {4}}, {id::deflate, {1}}};
  std::vector<std::byte> stored, out(data.size());
  ndshm::chunk_encoder().encode(pipeline, data, stored);
  ndshm::chunk_decoder decoder;
  EXPECT_EQ(decoder.decode(pipeline, 0, stored, out).status, decode_status::unsupported);
  decoder.reserve(data.size());
  EXPECT_EQ(decoder.decode(pipeline, 0, stored, out).status, decode_status::ok);
  EXPECT_EQ(out, data);
}

TEST(codecs, encode_chunks_pads_the_last_chunk_and_agrees_across_threads) {
  const auto data = bytes_of(10000);
  std::vector<filter> pipeline = {{id::shuffle, {4}}, {id::deflate, {1}}, {id::fletcher32, {}}};
  const auto one = ndshm::encode_chunks(pipeline, data, 4096, 1);
  ASSERT_EQ(one.size(), 3u);
  const auto three = ndshm::encode_chunks(pipeline, data, 4096, 3);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(one[i].bytes, three[i].bytes) << i;
    decode_status status;
    auto chunk = decode(pipeline, one[i].filter_mask, one[i].bytes, 4096, &status);
    EXPECT_EQ(status, decode_status::ok);
    std::vector<std::byte> expected(4096, std::byte{0}); // past the data: zeros, as HDF5 pads
    std::copy(data.begin() + i * 4096, data.begin() + std::min<std::size_t>(data.size(), (i + 1) * 4096),
              expected.begin());
    EXPECT_EQ(chunk, expected) << i;
  }
  EXPECT_TRUE(ndshm::encode_chunks(pipeline, {}, 4096, 2).empty());
  std::vector<filter> unknown = {{32008, {}}};
  EXPECT_THROW((void)ndshm::encode_chunks(unknown, data, 4096, 2), std::invalid_argument);
  EXPECT_THROW((void)ndshm::encode_chunks(pipeline, data, 0, 2), std::invalid_argument);
}
