// Anthropic's token margin: o200k counts times kMargin, rounded up, and its calibration from reported usage.
#include "connectors/providers/anthropic/anthropic.h"

#include <gtest/gtest.h>

#include "connectors/tokenizer/tokenizer.h"

namespace statefold::tokenizer {
namespace {

constexpr double kAnthropicMargin = providers::anthropic::kMargin;

TEST(Tokenizer, AnthropicMargin) {
  EXPECT_EQ(with_margin(0, kAnthropicMargin), 0u);
  EXPECT_EQ(with_margin(100, kAnthropicMargin), 110u);
  EXPECT_EQ(with_margin(101, kAnthropicMargin), 112u);  // 111.1, rounded up
  EXPECT_EQ(with_margin(1000, 1.0), 1000u);

  MarginCalibration calibration(kAnthropicMargin);
  EXPECT_DOUBLE_EQ(calibration.margin(), kAnthropicMargin);
  calibration.observe(100, 500);  // too small to say anything
  EXPECT_EQ(calibration.observations(), 0u);
  EXPECT_DOUBLE_EQ(calibration.margin(), kAnthropicMargin);
  calibration.observe(1000, 1200);  // the provider counted 20 % more
  EXPECT_DOUBLE_EQ(calibration.margin(), 1.2 * 1.02);
  EXPECT_EQ(calibration.apply(1000), 1224u);
  for (int i = 0; i < 50; ++i) calibration.observe(10'000, 10'500);
  EXPECT_NEAR(calibration.margin(), 1.05 * 1.02, 1e-4);
  for (int i = 0; i < 50; ++i) calibration.observe(10'000, 5'000);  // never below 1
  EXPECT_DOUBLE_EQ(calibration.margin(), 1.0);
  for (int i = 0; i < 50; ++i) calibration.observe(1'000, 10'000);  // nor above 2
  EXPECT_DOUBLE_EQ(calibration.margin(), 2.0);
}

TEST(Tokenizer, MarginIsTheProviders) {
  EXPECT_DOUBLE_EQ(providers::get(context::Provider::anthropic).token_margin(), kAnthropicMargin);
  EXPECT_TRUE(providers::get(context::Provider::anthropic).calibrated_margin());
  for (auto p : {context::Provider::openai_chat, context::Provider::openai_responses, context::Provider::echo}) {
    EXPECT_DOUBLE_EQ(providers::get(p).token_margin(), 1.0);
    EXPECT_FALSE(providers::get(p).calibrated_margin());
  }
}

}  // namespace
}  // namespace statefold::tokenizer
