// Broker messages: round trips, and malformed bytes rejected rather than misread.
#include <gtest/gtest.h>

#include <unistd.h>

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

TEST(protocol, tickets_programs_and_persistence_round_trip) {
  request in{op::attach, flag_persist, 0, "name", {}, 0xfedcba9876543210ULL};
  auto out = decode_request(encode(in));
  ASSERT_TRUE(out);
  EXPECT_EQ(out->ticket, 0xfedcba9876543210ULL);
  EXPECT_EQ(out->flags, flag_persist);
  reply answer;
  answer.program = "12-34-00000000000000ff";
  ndshm::segment_status entry;
  entry.program = "5-6-0123456789abcdef";
  entry.persistent = true;
  answer.entries.push_back(entry);
  auto back = decode_reply(encode(answer));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->program, answer.program);
  ASSERT_EQ(back->entries.size(), 1u);
  EXPECT_EQ(back->entries[0].program, entry.program);
  EXPECT_TRUE(back->entries[0].persistent);
  EXPECT_EQ(encoded_size(entry), encode(reply{.entries = {entry}}).size() - encode(reply{}).size());
}

TEST(protocol, program_ids_parse_only_when_well_formed) {
  auto id = format_program(4242, 987654, 0xabcULL);
  EXPECT_EQ(id, "4242-987654-0000000000000abc");
  auto claim = parse_program(id);
  ASSERT_TRUE(claim);
  EXPECT_EQ(claim->founder, 4242);
  EXPECT_EQ(claim->start_time, 987654u);
  for (const char *bad : {"", "4242", "4242-987654", "4242-987654-abc", "x-1-0000000000000abc",
                          "0-1-0000000000000abc", "1-1-000000000000zabc", "1--0000000000000abc"})
    EXPECT_FALSE(parse_program(bad)) << bad;
}

TEST(protocol, the_socket_address_names_the_protocol_version) {
  EXPECT_EQ(socket_address("s"), "ndshm" + std::to_string(protocol_version) + "." + std::to_string(::getuid()) + ".s");
  EXPECT_EQ(socket_address("s").rfind(address_prefix(), 0), 0u);
}
