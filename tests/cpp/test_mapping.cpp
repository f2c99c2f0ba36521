// Segment creation and mapping: zero fill, sizes, read-only mappings, the up-front memory check, and
// huge pages.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <optional>
#include <string>

#include <sys/mman.h>
#include <sys/utsname.h>

#include "detail/platform.hpp"
#include "ndshm/session.hpp"
#include "smaps.hpp"

namespace {
std::string session_name() {
  return "gtest-" + std::to_string(::getpid()) + "-" +
         ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

/// Whether memory_prefault should get huge pages here: Linux 6.1 (MADV_COLLAPSE), THP for shmem not
/// set to "deny", NDSHM_HUGE_PAGES not 0.
bool huge_pages_expected() {
  utsname name{};
  int major = 0, minor = 0;
  if (::uname(&name) != 0 || std::sscanf(name.release, "%d.%d", &major, &minor) != 2)
    return false;
  std::ifstream shmem("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
  std::string setting((std::istreambuf_iterator<char>(shmem)), std::istreambuf_iterator<char>());
  const char *env = std::getenv("NDSHM_HUGE_PAGES");
  return (major > 6 || (major == 6 && minor >= 1)) && !setting.empty() &&
         setting.find("[deny]") == std::string::npos && (env == nullptr || std::string(env) != "0");
}

/// NDSHM_HUGE_PAGES set to value while it lives (huge pages unpaced: the tests expect one wherever the
/// kernel can give one), then as it was.
class huge_pages_setting {
public:
  explicit huge_pages_setting(const char *value) {
    if (const char *old = std::getenv("NDSHM_HUGE_PAGES"); old != nullptr)
      m_old = old;
    ::setenv("NDSHM_HUGE_PAGES", value, 1);
  }
  huge_pages_setting(const huge_pages_setting &) = delete;
  huge_pages_setting &operator=(const huge_pages_setting &) = delete;
  ~huge_pages_setting() {
    if (m_old)
      ::setenv("NDSHM_HUGE_PAGES", m_old->c_str(), 1);
    else
      ::unsetenv("NDSHM_HUGE_PAGES");
  }

private:
  std::optional<std::string> m_old;
};

/// KiB of the mapping holding address that huge pages map (shared memory's or anonymous).
std::uint64_t huge_kib_at(const void *address) {
  return ndshm::test_support::smaps_kib(address, {"ShmemPmdMapped", "AnonHugePages"});
}
} // namespace

TEST(mapping, created_segments_are_zero_filled_and_exactly_sized) {
  auto segment = ndshm::create_segment({10'000, session_name()});
  EXPECT_EQ(segment->size(), 10'000u);
  EXPECT_TRUE(segment->writable());
  for (std::size_t i = 0; i < segment->size(); ++i)
    ASSERT_EQ(segment->data()[i], std::byte{0});
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(segment->data()) % 4096, 0u);
}

TEST(mapping, read_only_mappings_see_writes_and_cannot_write) {
  auto segment = ndshm::create_segment({100, session_name()});
  auto reader = ndshm::attach_segment(session_name(), segment->name(), ndshm::access::read_only);
  EXPECT_FALSE(reader->writable());
  std::memcpy(segment->data(), "hello", 5);
  EXPECT_EQ(std::memcmp(reader->data(), "hello", 5), 0);
  EXPECT_DEATH({ reader->data()[0] = std::byte{1}; }, "");
}

TEST(mapping, memory_is_reserved_up_front) {
  ndshm::detail::unique_fd fd = ndshm::detail::memory_create("test", 3 * 4096 + 1);
  EXPECT_EQ(ndshm::detail::memory_size(fd.get()), 4u * 4096);
  // Sealed: nobody can shrink it under a mapping.
  EXPECT_NE(::ftruncate(fd.get(), 0), 0);
  EXPECT_THROW((void)ndshm::detail::memory_create("test", std::uint64_t{1} << 50), std::bad_alloc);
}

// Mappings of 2 MiB or more start at a 2 MiB boundary, in the creator and in every process that
// attaches, and a populated segment is backed by one huge page per whole 2 MiB.
TEST(mapping, large_segments_are_aligned_and_backed_by_huge_pages) {
  constexpr std::uint64_t huge = ndshm::detail::huge_page_size;
  huge_pages_setting always("1");
  ndshm::segment_options options{5 * huge + 123, session_name()};
  auto segment = ndshm::create_segment(options);
  auto reader = ndshm::attach_segment(session_name(), segment->name(), ndshm::access::read_only);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(segment->data()) % huge, 0u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(reader->data()) % huge, 0u);
  for (std::uint64_t k = 0; k < options.size; k += 4096)
    ASSERT_EQ(reader->data()[k], std::byte{0});
  if (!huge_pages_expected())
    GTEST_SKIP() << "no huge pages for shared memory on this kernel or setting";
  EXPECT_EQ(huge_kib_at(segment->data()), 5 * huge / 1024); // the last, partial 2 MiB stays small
  EXPECT_EQ(huge_kib_at(reader->data()), 5 * huge / 1024);
}

// memory_prefault turns each whole 2 MiB of its range into a huge page, keeping what was written there
// already, and maps the ends of the range with small pages.
TEST(mapping, prefault_backs_whole_ranges_with_huge_pages_and_keeps_their_data) {
  constexpr std::uint64_t huge = ndshm::detail::huge_page_size;
  huge_pages_setting always("1");
  ndshm::segment_options options{8 * huge, session_name()};
  options.populate = false;
  auto segment = ndshm::create_segment(options);
  std::byte *data = segment->data();
  const std::uint64_t written[] = {huge + 5, 2 * huge + 4096 * 7 + 1, 3 * huge - 1, 6 * huge + 77};
  for (auto k : written)
    data[k] = std::byte{0x5a};
  // [huge / 2, 7 * huge + 100): whole ranges 1 to 6, small pages on both sides
  ASSERT_TRUE(ndshm::detail::memory_prefault(data + huge / 2, 6 * huge + huge / 2 + 100));
  for (std::uint64_t k = 0; k < options.size; ++k) {
    bool marked = std::find(std::begin(written), std::end(written), k) != std::end(written);
    ASSERT_EQ(data[k], marked ? std::byte{0x5a} : std::byte{0}) << "byte " << k;
  }
  if (!huge_pages_expected())
    GTEST_SKIP() << "no huge pages for shared memory on this kernel or setting";
  EXPECT_EQ(huge_kib_at(data), 6 * huge / 1024);
}

// A call that starts inside a 2 MiB range leaves that range as the call before it left it (here,
// small pages): only the whole ranges from its start on become huge pages.
TEST(mapping, prefault_leaves_the_range_its_start_falls_in) {
  constexpr std::uint64_t huge = ndshm::detail::huge_page_size;
  ndshm::segment_options options{4 * huge, session_name()};
  options.populate = false;
  auto segment = ndshm::create_segment(options);
  std::byte *data = segment->data();
  {
    huge_pages_setting never("0");
    ASSERT_TRUE(ndshm::detail::memory_prefault(data, huge + 26));
  }
  huge_pages_setting always("1");
  ASSERT_TRUE(ndshm::detail::memory_prefault(data + 26, 4 * huge - 26));
  if (!huge_pages_expected())
    GTEST_SKIP() << "no huge pages for shared memory on this kernel or setting";
  EXPECT_EQ(huge_kib_at(data), 3 * huge / 1024); // [2, 8) MiB; [0, 2) MiB still small
}

// NDSHM_HUGE_PAGES=0: small pages only, the data the same.
TEST(mapping, huge_pages_can_be_turned_off) {
  constexpr std::uint64_t huge = ndshm::detail::huge_page_size;
  huge_pages_setting never("0");
  ndshm::segment_options options{4 * huge, session_name()};
  auto segment = ndshm::create_segment(options);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(segment->data()) % huge, 0u);
  EXPECT_EQ(huge_kib_at(segment->data()), 0u);
}

// By default a thread paces its huge pages: after one that cost more than small pages would have
// (memory the host had taken back), the next 16 ranges take small pages, then it tries again.
TEST(mapping, a_slow_huge_page_makes_the_next_ranges_small) {
  ndshm::detail::huge_page_pacer pacer;
  for (int k = 0; k < 100; ++k) { // fast ones: always huge
    ASSERT_TRUE(pacer.next_huge());
    pacer.took(0.0003);
  }
  ASSERT_TRUE(pacer.next_huge());
  pacer.took(0.004); // slow
  for (unsigned k = 0; k < ndshm::detail::huge_page_pacer::small_after_slow; ++k)
    ASSERT_FALSE(pacer.next_huge()) << "range " << k << " after the slow one";
  EXPECT_TRUE(pacer.next_huge()); // tried again
  pacer.took(0.0003);
  EXPECT_TRUE(pacer.next_huge());
}
