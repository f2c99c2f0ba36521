// Fuzz target for the text parser: any bytes, any grammar, must give rows or a parse_error, never a
// crash, an out-of-bounds access (run it under tools/sanitize.sh) or a result that depends on threads
// or on parsing in one pass (parse_one_pass, into room that moves as it grows).
//
// Built with clang -fsanitize=fuzzer it is a libFuzzer target (-DNDSHM_LIBFUZZER). Otherwise main()
// feeds it random and mutated inputs for a bounded time: fuzz_loadtxt [SECONDS] [SEED].
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "moving_room.hpp"
#include "ndshm/loadtxt.hpp"

namespace {

/// Parses data with a grammar taken from its first bytes; returns the rows' bytes or the error text.
std::string run(const std::uint8_t *data, std::size_t size, unsigned threads, bool one_pass = false) {
  using namespace ndshm;
  if (size < 4)
    return {};
  text_format format;
  const char delimiters[] = {0, ',', '\t', ';', ' '};
  format.delimiter = delimiters[data[0] % 5];
  format.comment = data[1] % 3 == 0 ? "" : "#";
  format.quote = data[1] % 2 == 0 ? '"' : 0;
  format.skiprows = data[2] % 3;
  format.max_rows = data[2] % 5 == 0 ? 2 : -1;
  format.truncate_strings = (data[3] & 1) != 0;
  format.threads = threads;
  std::vector<field_spec> fields;
  const field_kind kinds[] = {field_kind::signed_int, field_kind::unsigned_int, field_kind::floating,
                              field_kind::boolean, field_kind::bytes};
  std::uint32_t offset = 0;
  for (int i = 0; i < 1 + data[3] % 4; ++i) {
    field_kind kind = kinds[(data[3] >> (2 * i)) % 5];
    std::uint32_t width = kind == field_kind::floating ? 8 : kind == field_kind::bytes ? 5 : 4;
    fields.push_back({kind, width, offset, false, "t"});
    offset += width;
  }
  auto source = text_source::borrow(std::string_view(reinterpret_cast<const char *>(data + 4), size - 4), "fuzz");
  try {
    if (one_pass) {
      std::vector<std::byte> out;
      auto plan = parse_one_pass(source, format, fields, offset, test_support::moving_room{out});
      return std::string(reinterpret_cast<const char *>(out.data()), plan.rows * offset);
    }
    auto plan = plan_rows(source, format);
    std::vector<std::byte> out(plan.rows * offset + 1);
    parse_rows(source, format, plan, fields, out.data(), offset);
    return std::string(reinterpret_cast<const char *>(out.data()), plan.rows * offset);
  } catch (const parse_error &e) {
    return std::string("error:") + e.what();
  }
}

void check(const std::uint8_t *data, std::size_t size) {
  std::string one = run(data, size, 1);
  std::string many = run(data, size, 3);
  std::string streamed = run(data, size, 1, true);
  if (one != many || one != streamed) {
    std::fprintf(stderr, "result depends on the thread count (or one pass) for input of %zu bytes\n", size);
    std::abort();
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  check(data, size);
  return 0;
}

#ifndef NDSHM_LIBFUZZER
int main(int argc, char **argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 5.0;
  std::mt19937_64 rng(argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 20261126);
  const std::string alphabet = "0123456789+-.eEinfatINFNAN \t,;#\"\r\n\n\nxyz";
  const char *seeds[] = {"1,2\n3,4\n", "a b 1.5\n# c\n\nc d 2\n", "\"x,\"\"y\",1\n", "1e5 -0 +3\r\n4 5 6"};
  auto stop = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  std::size_t runs = 0;
  std::vector<std::uint8_t> input;
  // Inputs well past 1 MiB as well, so that several threads really split them.
  while (std::chrono::steady_clock::now() < stop) {
    input.assign(4, 0);
    for (auto &b : input)
      b = static_cast<std::uint8_t>(rng());
    std::size_t target = rng() % 8 == 0 ? (1u << 20) + rng() % (1u << 20) : rng() % 512;
    const char *seed = seeds[rng() % 4];
    while (input.size() < target + 4) {
      if (rng() % 4 == 0)
        input.insert(input.end(), seed, seed + std::strlen(seed));
      else
        input.push_back(static_cast<std::uint8_t>(alphabet[rng() % alphabet.size()]));
    }
    check(input.data(), input.size());
    ++runs;
  }
  std::printf("fuzz_loadtxt: %zu inputs, no crash, results independent of the thread count\n", runs);
  return 0;
}
#endif
