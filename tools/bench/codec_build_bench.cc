// codec_build_bench: the cost of one event written by codec::build() against the JSON text path it replaces for
// statefold's own producers (json_to_flatbuffers on the same event's schema-ordered JSON). Prints figures; not a test.
//
//   codec_build_bench [--benchmark_filter=Message]
#include <benchmark/benchmark.h>

#include <string>

#include "engine/codec/build.h"
#include "engine/codec/codec.h"

namespace {

using namespace statefold;  // NOLINT: a main file, not a header

codec::Envelope envelope() {
  return {.event_id = "00112233445566778899aabbccddeeff", .session_id = "chat-42", .expected_version = 12,
          .occurred_at_us = 1718000000000000, .source = "gateway"};
}

// A user turn of about 1 KiB, the size the gateway writes most.
const std::string kText(1000, 'x');

codec::Message message() {
  return {.role = codec::Role::user, .content = std::vector<codec::ContentPart>{{.text = kText}}};
}

const std::string kMessageJson =
    R"({"event_id":"00112233445566778899aabbccddeeff","session_id":"chat-42","expected_version":12,)"
    R"("occurred_at_us":1718000000000000,"source":"gateway","payload_type":"Message","payload":{"role":"user",)"
    R"("content":[{"kind":"text","text":")" + kText + R"("}]}})";

codec::InferenceReceipt receipt() {
  return {.request_hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", .state_version = 3,
          .provider = "openai", .endpoint = "chat.completions", .model = "gpt-4o", .usage = codec::Usage{1200, 80, 1024},
          .latency_ms = 640, .status = 200, .render = R"({"context":3,"extra":{},"margin":0,"model":"gpt-4o"})"};
}

const std::string kReceiptJson =
    R"({"event_id":"00112233445566778899aabbccddeeff","session_id":"chat-42","expected_version":12,)"
    R"("occurred_at_us":1718000000000000,"source":"gateway","payload_type":"InferenceReceipt","payload":{)"
    R"("request_hash":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","state_version":3,)"
    R"("provider":"openai","endpoint":"chat.completions","model":"gpt-4o","usage":{"input_tokens":1200,)"
    R"("output_tokens":80,"cached_tokens":1024},"latency_ms":640,"status":200,)"
    R"("render":"{\"context\":3,\"extra\":{},\"margin\":0,\"model\":\"gpt-4o\"}"}})";

void BM_BuildMessage(benchmark::State& state) {
  const auto e = envelope();
  const codec::Payload p = message();
  for (auto _ : state) benchmark::DoNotOptimize(codec::build(e, p));
}
BENCHMARK(BM_BuildMessage);

void BM_JsonMessage(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(codec::json_to_flatbuffers(kMessageJson));
}
BENCHMARK(BM_JsonMessage);

void BM_BuildReceipt(benchmark::State& state) {
  const auto e = envelope();
  const codec::Payload p = receipt();
  for (auto _ : state) benchmark::DoNotOptimize(codec::build(e, p));
}
BENCHMARK(BM_BuildReceipt);

void BM_JsonReceipt(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(codec::json_to_flatbuffers(kReceiptJson));
}
BENCHMARK(BM_JsonReceipt);

}  // namespace

BENCHMARK_MAIN();
