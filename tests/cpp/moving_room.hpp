// Test support shared by the GoogleTest suite and the fuzz target.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ndshm::test_support {

/// Room for parse_one_pass / parse_stream that moves on every call, as a growing segment's may: a new
/// buffer each time, the bytes so far copied into it. moves counts the calls.
struct moving_room {
  std::vector<std::byte> &bytes;
  std::uint64_t *moves = nullptr;
  std::byte *operator()(std::uint64_t nbytes) const {
    if (moves != nullptr)
      ++*moves;
    std::vector<std::byte> moved(std::max<std::size_t>(bytes.size(), nbytes + 1));
    std::copy(bytes.begin(), bytes.end(), moved.begin());
    bytes.swap(moved);
    return bytes.data();
  }
};

} // namespace ndshm::test_support
