// Segment creation and mapping: zero fill, sizes, read-only mappings, and the up-front memory check.
#include <gtest/gtest.h>

#include <cstring>
#include <new>

#include <sys/mman.h>

#include "detail/platform.hpp"
#include "ndshm/session.hpp"

namespace {
std::string session_name() {
  return "gtest-" + std::to_string(::getpid()) + "-" +
         ::testing::UnitTest::GetInstance()->current_test_info()->name();
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
