// Broker messages: round trips, and malformed bytes rejected rather than misread.
#include <gtest/gtest.h>

#include "detail/protocol.hpp"

using namespace ndshm::detail;

TEST(protocol, request_round_trip) {
  request in{op::create, flag_named, 12345, "name", {"<f8", "(3,)"}};
  auto out = decode_request(encode(in));
  ASSERT_TRUE(out);
  EXPECT_EQ(out->code, op::create);
  EXPECT_EQ(out->flags, flag_named);
  EXPECT_EQ(out->size, 12345u);
  EXPECT_EQ(out->name, "name");
  EXPECT_EQ(out->meta.shape, "(3,)");
}

TEST(protocol, reply_round_trip_with_entries) {
  reply in;
  in.value = 7;
  in.more = true;
  ndshm::segment_status entry;
  entry.name = "x";
  entry.holders = {1, 2};
  entry.age_seconds = 1.5;
  in.entries.push_back(entry);
  auto out = decode_reply(encode(in));
  ASSERT_TRUE(out);
  EXPECT_TRUE(out->more);
  ASSERT_EQ(out->entries.size(), 1u);
  EXPECT_EQ(out->entries[0].holders, (std::vector<std::int32_t>{1, 2}));
  EXPECT_EQ(out->entries[0].age_seconds, 1.5);
}

TEST(protocol, malformed_messages_are_rejected) {
  auto bytes = encode(request{op::attach, 0, 0, "name", {}});
  EXPECT_FALSE(decode_request(std::span(bytes).first(bytes.size() - 1)));
  bytes.push_back(std::byte{0});
  EXPECT_FALSE(decode_request(bytes));
  auto wrong_op = encode(request{static_cast<op>(99), 0, 0, "", {}});
  EXPECT_FALSE(decode_request(wrong_op));
  std::vector<std::byte> empty;
  EXPECT_FALSE(decode_request(empty));
}
