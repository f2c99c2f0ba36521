// C++ shared arrays: item sizes, create/share/attach, and bounds checks on handles.
#include <gtest/gtest.h>

#include "ndshm/array.hpp"
#include "ndshm/errors.hpp"
#include "ndshm/session.hpp"

TEST(array, itemsize_of_simple_typestrs) {
  EXPECT_EQ(ndshm::itemsize_of("<f8"), 8u);
  EXPECT_EQ(ndshm::itemsize_of("|S10"), 10u);
  EXPECT_EQ(ndshm::itemsize_of("<U4"), 16u);
  EXPECT_EQ(ndshm::itemsize_of("|b1"), 1u);
  EXPECT_THROW((void)ndshm::itemsize_of("[('a', '<i4')]"), std::invalid_argument);
  EXPECT_THROW((void)ndshm::itemsize_of("<O8"), std::invalid_argument);
}

TEST(array, share_and_attach_round_trip) {
  std::string session = "gtest-" + std::to_string(::getpid()) + "-array";
  {
    auto array = ndshm::create_array("<i4", {3, 4}, 0, session);
    EXPECT_EQ(array.layout.strides, (std::vector<std::int64_t>{16, 4}));
    for (int i = 0; i < 12; ++i)
      array.data_as<std::int32_t>()[i] = i;
    std::string handle = ndshm::share(array);
    array = {};
    auto back = ndshm::attach_array(handle, ndshm::access::read_only);
    EXPECT_EQ(back.layout.shape, (std::vector<std::int64_t>{3, 4}));
    EXPECT_EQ(back.data_as<std::int32_t>()[11], 11);

    ndshm::array_handle outside = back.layout;
    outside.shape = {100};
    outside.strides = {4};
    outside.ticket = ndshm::issue_ticket(*back.segment); // redeemed by the attach that fails its check
    EXPECT_THROW((void)ndshm::attach_array(outside.to_string()), std::invalid_argument);
  }
  EXPECT_TRUE(ndshm::list_segments(session).empty());
  ndshm::disconnect(session);
}
