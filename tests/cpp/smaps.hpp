// Test support: what /proc/self/smaps says of the mapping that holds an address.
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string>
#include <string_view>

namespace ndshm::test_support {

/// The sum of the named fields ("Rss", "ShmemPmdMapped", ...), in KiB, of the mapping holding address.
inline std::uint64_t smaps_kib(const void *address, std::initializer_list<std::string_view> names) {
  std::ifstream smaps("/proc/self/smaps");
  auto at = reinterpret_cast<std::uintptr_t>(address);
  bool inside = false;
  std::uint64_t kib = 0;
  for (std::string line; std::getline(smaps, line);) {
    std::uintptr_t low = 0, high = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &low, &high) == 2 && line.find(':') > line.find(' ')) {
      inside = low <= at && at < high;
      continue;
    }
    const auto colon = line.find(':');
    if (!inside || colon == std::string::npos)
      continue;
    for (std::string_view name : names) {
      if (std::string_view(line).substr(0, colon) == name) {
        std::istringstream fields(line.substr(colon + 1));
        std::uint64_t value = 0;
        fields >> value;
        kib += value;
      }
    }
  }
  return kib;
}

} // namespace ndshm::test_support
