// The C++ parser alone on a five-column file (chr S10, pos i4, pct f4, c i4, t i4; tab-separated) or a
// matrix (float64 columns separated by whitespace): plan and parse times of each repetition, output
// memory already touched. For profiling the hot path without Python (perf record ./parse_bench FILE 1 5).
// That memory is a std::vector, and the parse still asks for huge pages over it: MADV_COLLAPSE then
// copies pages already there (copy_mc_enhanced_fast_string, 3.4% of perf's samples in session 9), so
// compare parse times with NDSHM_HUGE_PAGES=0.
// parse_rows unmaps the file's pages as it goes, so each repetition's plan maps them again, as a fresh
// load does (since session 8: earlier plan times left that out, about 0.06 s per GB on two threads).
// With "fresh" after the kind, one thread parses in one pass into fresh shared memory that grows, as
// ndshm.loadtxt(threads=1) does, and the user and system (page) times are printed too.
// A FILE.gz (coverage only) is streamed as ndshm.loadtxt streams it: inflated once, parsed into a
// growing segment (fresh pages each time); threads 0 there is loadtxt's default choice.
// Build: cmake -S . -B build/cpp-tests -DNDSHM_BUILD_TESTS=ON && cmake --build build/cpp-tests --target parse_bench
//        (tools/test-all.sh builds it RelWithDebInfo; timings quoted as "Release" come from a build
//        configured with -DCMAKE_BUILD_TYPE=Release in a directory of its own, as the wheel is built)
// Run:   build/cpp-tests/parse_bench FILE [threads=1] [repetitions=5] [coverage|matrix] [fresh]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "ndshm/loadtxt.hpp"
#include "ndshm/session.hpp"

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE [threads] [repetitions] [coverage|matrix] [fresh]\n", argv[0]);
    return 2;
  }
  using namespace ndshm;
  const std::string_view path = argv[1];
  text_format format;
  format.threads = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 1;
  int repetitions = argc > 3 ? std::atoi(argv[3]) : 5;
  std::vector<field_spec> coverage = {{field_kind::bytes, 10, 0, false, "S10"},
                                      {field_kind::signed_int, 4, 10, false, "int32"},
                                      {field_kind::floating, 4, 14, false, "float32"},
                                      {field_kind::signed_int, 4, 18, false, "int32"},
                                      {field_kind::signed_int, 4, 22, false, "int32"}};
  if (path.ends_with(".gz")) {
    format.delimiter = '\t';
    for (int r = 0; r < repetitions; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      auto blocks = text_blocks::open_gzip(std::string(path));
      growing_segment rows;
      auto plan = parse_stream(blocks, format, coverage, 26, [&](std::uint64_t n) { return rows.reserve(n); });
      auto kept = rows.finish_private(plan.rows * 26);
      auto t1 = std::chrono::steady_clock::now();
      std::printf("inflate+parse %.3f s  rows %llu\n", std::chrono::duration<double>(t1 - t0).count(),
                  static_cast<unsigned long long>(plan.rows));
    }
    return 0;
  }
  auto source = text_source::open(std::string(path));
  std::vector<field_spec> fields;
  std::uint64_t stride = 0;
  if (argc > 4 && std::string_view(argv[4]) == "matrix") { // whitespace-separated float64 columns
    auto columns = plan_rows(source, format).columns;
    for (std::uint32_t c = 0; c < columns; ++c)
      fields.push_back({field_kind::floating, 8, 8 * c, false, "float64"});
    stride = 8 * columns;
  } else {
    format.delimiter = '\t';
    fields = coverage;
    stride = 26;
  }
  if (argc > 5 && std::string_view(argv[5]) == "fresh") {
    format.threads = 1;
    auto seconds = [](const timeval &t) { return static_cast<double>(t.tv_sec) + t.tv_usec * 1e-6; };
    for (int r = 0; r < repetitions; ++r) {
      rusage u0{}, u1{};
      ::getrusage(RUSAGE_SELF, &u0);
      auto t0 = std::chrono::steady_clock::now();
      growing_segment rows;
      auto plan = parse_one_pass(source, format, fields, stride, [&](std::uint64_t n) { return rows.reserve(n); });
      auto kept = rows.finish_private(plan.rows * stride);
      auto t1 = std::chrono::steady_clock::now();
      ::getrusage(RUSAGE_SELF, &u1);
      std::printf("one pass %.3f s  user %.3f s  system %.3f s  rows %llu\n",
                  std::chrono::duration<double>(t1 - t0).count(), seconds(u1.ru_utime) - seconds(u0.ru_utime),
                  seconds(u1.ru_stime) - seconds(u0.ru_stime), static_cast<unsigned long long>(plan.rows));
    }
    return 0;
  }
  std::vector<std::byte> out;
  for (int r = 0; r < repetitions; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    auto plan = plan_rows(source, format);
    auto t1 = std::chrono::steady_clock::now();
    out.resize(plan.rows * stride);
    parse_rows(source, format, plan, fields, out.data(), stride);
    auto t2 = std::chrono::steady_clock::now();
    std::printf("plan %.3f s  parse %.3f s  rows %llu\n", std::chrono::duration<double>(t1 - t0).count(),
                std::chrono::duration<double>(t2 - t1).count(), static_cast<unsigned long long>(plan.rows));
  }
}
