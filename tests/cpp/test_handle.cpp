// Handle strings: formatting, parsing, extents and the errors for malformed text.
#include <gtest/gtest.h>

#include "ndshm/handle.hpp"

using ndshm::array_handle;

TEST(handle, round_trips_every_field) {
  array_handle h{"default", "a0123456789abcdef", 9, 32, 8, {2, 2}, {32, -16}, "[('a', '<i4'), ('b', '|S4')]"};
  std::string text = h.to_string();
  EXPECT_EQ(text, "ndshm2:default:a0123456789abcdef:9:32:8:2,2:32,-16:[('a', '<i4'), ('b', '|S4')]");
  EXPECT_EQ(array_handle::parse(text), h);
}

TEST(handle, zero_dimensional) {
  array_handle h{"s", "n", 0, 0, 8, {}, {}, "<f8"};
  EXPECT_EQ(array_handle::parse(h.to_string()), h);
  EXPECT_EQ(h.extent(), std::make_pair(std::int64_t{0}, std::int64_t{8}));
}

TEST(handle, extent_covers_negative_strides_and_empty_views) {
  array_handle reversed{"s", "n", 0, 72, 8, {10}, {-8}, "<f8"};
  EXPECT_EQ(reversed.extent(), std::make_pair(std::int64_t{0}, std::int64_t{80}));
  array_handle empty{"s", "n", 0, 40, 8, {3, 0}, {8, 8}, "<f8"};
  EXPECT_EQ(empty.extent(), std::make_pair(std::int64_t{40}, std::int64_t{40}));
}

TEST(handle, malformed_text_names_the_bad_part) {
  auto message = [](const std::string &text) {
    try {
      (void)array_handle::parse(text);
    } catch (const std::invalid_argument &e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("nope").find("bad prefix"), std::string::npos);
  EXPECT_NE(message("ndshm1:s:n:0:8:1:8:<f8").find("bad prefix"), std::string::npos); // version 1
  EXPECT_NE(message("ndshm3:s:n:0:0:8:1:8:<f8").find("bad prefix"), std::string::npos);
  EXPECT_NE(message("ndshm2:s:n:0:0:8").find("number of fields"), std::string::npos);
  EXPECT_NE(message("ndshm2:s/x:n:0:0:8:1:8:<f8").find("session name"), std::string::npos);
  EXPECT_NE(message("ndshm2:s:n:0:x:8:1:8:<f8").find("bad offset"), std::string::npos);
  EXPECT_NE(message("ndshm2:s:n:0:0:8:1,:8:<f8").find("bad shape"), std::string::npos);
  EXPECT_NE(message("ndshm2:s:n:0:0:8:1,2:8:<f8").find("not one per dimension"), std::string::npos);
  EXPECT_NE(message("ndshm2:s:n:0:0:8:-1:8:<f8").find("negative"), std::string::npos);
  EXPECT_NE(message("ndshm2:s:n:0:0:8:1:8:").find("descr"), std::string::npos);
}

TEST(handle, valid_names) {
  EXPECT_TRUE(ndshm::valid_name("psm_1a2b.x-y"));
  EXPECT_FALSE(ndshm::valid_name(""));
  EXPECT_FALSE(ndshm::valid_name("a:b"));
  EXPECT_FALSE(ndshm::valid_name("a/b"));
  EXPECT_FALSE(ndshm::valid_name(std::string(201, 'a')));
}
