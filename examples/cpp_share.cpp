// A C++ program that shares arrays with Python through ndshm handle strings.
//
//   cpp_share_example make N      creates float64 [0, 0.5, 1, ...] and a (chr S10, pos i4) record array,
//                                 prints their handles (one per line) and exits: the memory stays
//                                 alive until Python attaches.
//   cpp_share_example negate H    attaches a float64 array made by Python, prints its sum, negates it.
#include <cstdint>
#include <cstring>
#include <iostream>
#include <string>

#include "ndshm/array.hpp"

namespace {

#pragma pack(push, 1)
struct record {
  char chr[10];
  std::int32_t pos;
};
#pragma pack(pop)

int make(std::int64_t n) {
  auto values = ndshm::create_array("<f8", {n});
  for (std::int64_t i = 0; i < n; ++i)
    values.data_as<double>()[i] = 0.5 * static_cast<double>(i);

  auto records = ndshm::create_array("[('chr', '|S10'), ('pos', '<i4')]", {n}, sizeof(record));
  for (std::int64_t i = 0; i < n; ++i) {
    record &r = records.data_as<record>()[i];
    std::memset(r.chr, 0, sizeof r.chr);
    std::string name = "chr" + std::to_string(i % 22 + 1);
    std::memcpy(r.chr, name.data(), name.size());
    r.pos = static_cast<std::int32_t>(1000 + i);
  }
  std::cout << ndshm::share(values) << '\n' << ndshm::share(records) << std::endl;
  return 0;
}

int negate(const std::string &handle) {
  auto array = ndshm::attach_array(handle);
  if (array.layout.descr != "<f8" || array.layout.shape.size() != 1 ||
      array.layout.strides[0] != static_cast<std::int64_t>(sizeof(double))) {
    std::cerr << "expected a contiguous 1-d float64 array, got " << handle << '\n';
    return 2;
  }
  double sum = 0;
  double *x = array.data_as<double>();
  for (std::int64_t i = 0; i < array.layout.shape[0]; ++i) {
    sum += x[i];
    x[i] = -x[i];
  }
  std::cout << sum << std::endl;
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  try {
    if (argc == 3 && std::string(argv[1]) == "make")
      return make(std::stoll(argv[2]));
    if (argc == 3 && std::string(argv[1]) == "negate")
      return negate(argv[2]);
    std::cerr << "usage: cpp_share_example make N | negate HANDLE\n";
    return 2;
  } catch (const std::exception &e) {
    std::cerr << "cpp_share_example: " << e.what() << '\n';
    return 1;
  }
}
