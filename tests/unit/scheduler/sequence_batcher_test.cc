#include "scheduler/sequence_batcher.h"

#include <cstring>
#include <future>

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include "fake_instance.h"
#include "scheduler/execution_slots.h"
#include "scheduler/model_scheduler.h"

namespace mm {
namespace {

inference::ModelConfig Config(const std::string& text) {
  inference::ModelConfig config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config)) << text;
  return config;
}

const char* kAccumulator = R"(name: "acc" max_batch_size: 4
  input { name: "INPUT" data_type: TYPE_FP32 dims: [1] }
  output { name: "OUTPUT" data_type: TYPE_FP32 dims: [1] }
  sequence_batching {
    max_sequence_idle_microseconds: 1000
    oldest { max_candidate_sequences: 8 }
    control_input { name: "START" control { kind: CONTROL_SEQUENCE_START int32_false_true: [0, 1] } }
    control_input { name: "CORRID" control { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_INT64 } }
    state { input_name: "S_IN" output_name: "S_OUT" data_type: TYPE_FP32 dims: [1] }
  })";

// What the accumulator computes, row by row: OUTPUT = S_OUT = 2 * S_IN + INPUT;
// it records the control inputs it saw for the test to read.
struct Seen {
  std::mutex mu;
  std::vector<std::pair<int32_t, int64_t>> controls;  // (START, CORRID) per row
};

fakes::FakeInstance::Handler Accumulate(Seen* seen) {
  return [seen](const InferRequest& request, InferResponse& response) -> Status {
    const Tensor *x = nullptr, *s = nullptr, *start = nullptr, *corrid = nullptr;
    for (const Tensor& t : request.inputs) {
      if (t.name == "INPUT") x = &t;
      if (t.name == "S_IN") s = &t;
      if (t.name == "START") start = &t;
      if (t.name == "CORRID") corrid = &t;
    }
    if (!x || !s || !start || !corrid) return InvalidArgument("an input is missing");
    const size_t rows = x->data.size() / sizeof(float);
    {
      std::lock_guard<std::mutex> lock(seen->mu);
      for (size_t r = 0; r < rows; ++r) {
        seen->controls.emplace_back(start->as<int32_t>()[r], corrid->as<int64_t>()[r]);
      }
    }
    auto buffer = std::make_shared<ByteBuffer>(rows * sizeof(float));
    auto* y = reinterpret_cast<float*>(buffer->bytes.get());
    for (size_t r = 0; r < rows; ++r) y[r] = 2 * s->as<float>()[r] + x->as<float>()[r];
    for (const char* name : {"OUTPUT", "S_OUT"}) {
      Tensor& out = response.outputs.emplace_back();
      out.name = name;
      out.dtype = DataType::kFp32;
      out.shape = {static_cast<int64_t>(rows), 1};
      AttachBuffer(out, buffer);
    }
    return OkStatus();
  };
}

struct Fixture {
  explicit Fixture(size_t max_sequences = 0) {
    auto parsed = SequenceConfig::FromModelConfig(Config(kAccumulator));
    EXPECT_TRUE(parsed.ok()) << parsed.status().message();
    if (max_sequences) parsed->max_sequences = max_sequences;
    std::vector<std::unique_ptr<ModelInstance>> instances;
    for (int i = 0; i < 2; ++i) {
      instances.push_back(std::make_unique<fakes::FakeInstance>(
          fakes::FakeInstance::Options{.handler = Accumulate(&seen)}));
    }
    ModelSchedulerConfig config;
    config.model_name = "acc";
    config.sequence = std::make_shared<const SequenceConfig>(std::move(*parsed));
    scheduler = *ModelScheduler::Create(std::move(instances), &slots,
                                        {.clock = &clock, .timer = &timer}, std::move(config));
  }
  ~Fixture() { slots.Shutdown(); }

  // Sends one request and waits for its answer: OUTPUT's value, or the error.
  StatusOr<float> Step(std::variant<int64_t, std::string> id, float value, bool start = false,
                       bool end = false) {
    auto request = std::make_unique<InferRequest>();
    request->model_name = "acc";
    std::visit([&](const auto& v) { request->parameters["sequence_id"] = v; }, id);
    if (start) request->parameters["sequence_start"] = true;
    if (end) request->parameters["sequence_end"] = true;
    auto values = std::make_shared<float>(value);
    Tensor& t = request->inputs.emplace_back();
    t.name = "INPUT";
    t.dtype = DataType::kFp32;
    t.shape = {1, 1};
    t.data = {reinterpret_cast<const std::byte*>(values.get()), sizeof(float)};
    t.owner = values;
    std::promise<StatusOr<float>> answer;
    scheduler->Enqueue(std::move(request), [&](StatusOr<std::unique_ptr<InferResponse>> r) {
      if (!r.ok()) return answer.set_value(r.status());
      for (const Tensor& out : (*r)->outputs) {
        if (out.name == "S_OUT") return answer.set_value(Internal("the state output leaked"));
      }
      answer.set_value((*r)->outputs.at(0).as<float>()[0]);
    });
    return answer.get_future().get();
  }

  Seen seen;
  FakeClock clock;
  Timer timer{&clock, /*with_thread=*/false};
  ExecutionSlots slots{ExecutionSlotsOptions{.slots = 2}};
  std::shared_ptr<ModelScheduler> scheduler;
};

TEST(SequenceBatcherTest, ASequenceCarriesItsStateAndSeesItsControls) {
  Fixture f;
  EXPECT_EQ(*f.Step(int64_t{7}, 1, true), 1);
  EXPECT_EQ(*f.Step(int64_t{8}, 1, true), 1);  // another sequence: its own state
  EXPECT_EQ(*f.Step(int64_t{7}, 0), 2);
  EXPECT_EQ(*f.Step(int64_t{7}, 1, false, true), 5);
  EXPECT_EQ(f.scheduler->sequences()->sequences(), 1u);
  std::lock_guard<std::mutex> lock(f.seen.mu);
  ASSERT_EQ(f.seen.controls.size(), 4u);
  EXPECT_EQ(f.seen.controls[0], (std::pair<int32_t, int64_t>{1, 7}));
  EXPECT_EQ(f.seen.controls[2], (std::pair<int32_t, int64_t>{0, 7}));
}

TEST(SequenceBatcherTest, ErrorsSayWhatWasWrong) {
  Fixture f;
  auto missing = f.Step(int64_t{0}, 1, true);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("needs the parameter sequence_id"), std::string::npos);
  auto unknown = f.Step(int64_t{3}, 1);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("sequence 3 is not under way"), std::string::npos);
  ASSERT_TRUE(f.Step(int64_t{3}, 1, true).ok());
  auto again = f.Step(int64_t{3}, 1, true);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("already under way"), std::string::npos);
  // A string id where CORRID takes an integer.
  auto text = f.Step(std::string("s"), 1, true);
  ASSERT_FALSE(text.ok());
  EXPECT_NE(text.status().message().find("send an integer sequence_id"), std::string::npos);
}

TEST(SequenceBatcherTest, IdleSequencesExpireOnTheTimerAndTheLimitHolds) {
  Fixture f(/*max_sequences=*/2);
  ASSERT_TRUE(f.Step(int64_t{1}, 1, true).ok());
  ASSERT_TRUE(f.Step(int64_t{2}, 1, true).ok());
  auto third = f.Step(int64_t{3}, 1, true);
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.status().code(), StatusCode::kResourceExhausted);
  f.clock.AdvanceUs(1001);  // past max_sequence_idle_microseconds
  f.timer.RunDue();
  EXPECT_EQ(f.scheduler->sequences()->sequences(), 0u);
  auto expired = f.Step(int64_t{1}, 1);
  ASSERT_FALSE(expired.ok());
  EXPECT_NE(expired.status().message().find("it expired"), std::string::npos);
  EXPECT_TRUE(f.Step(int64_t{3}, 1, true).ok());  // room again
}

TEST(SequenceBatcherTest, AFailedInstanceEndsItsSequences) {
  Fixture f;
  ASSERT_TRUE(f.Step(int64_t{1}, 1, true).ok());
  ASSERT_TRUE(f.Step(int64_t{2}, 1, true).ok());
  f.scheduler->EndSequences("ended: its worker died");
  auto after = f.Step(int64_t{1}, 1);
  ASSERT_FALSE(after.ok());
  EXPECT_NE(after.status().message().find("it ended: its worker died"), std::string::npos);
  EXPECT_EQ(f.scheduler->pending(), 0u);
}

TEST(SequenceConfigTest, ReadsTritonsConfigAndRefusesWhatItDoesNotSupport) {
  auto direct = SequenceConfig::FromModelConfig(Config(R"(max_batch_size: 4
    sequence_batching { })"));
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(direct->strategy, SequenceConfig::Strategy::kDirect);
  EXPECT_EQ(direct->sequences_per_lane, 4u);
  EXPECT_EQ(direct->max_idle_ns, 1'000'000'000);
  EXPECT_EQ(direct->max_sequences, SequenceConfig::kMaxSequences);
  auto acc = SequenceConfig::FromModelConfig(Config(kAccumulator));
  ASSERT_TRUE(acc.ok());
  EXPECT_EQ(acc->strategy, SequenceConfig::Strategy::kOldest);
  EXPECT_EQ(acc->states.at(0).bytes, 4u);
  for (const char* bad : {
           "sequence_batching { iterative_sequence: true }",
           "sequence_batching { state { input_name: \"a\" output_name: \"b\" data_type: "
           "TYPE_FP32 dims: [-1] } }",
           "sequence_batching { state { input_name: \"a\" output_name: \"b\" data_type: "
           "TYPE_FP32 dims: [1] initial_state { data_file: \"x\" } } }",
           "sequence_batching { control_input { name: \"S\" control { kind: "
           "CONTROL_SEQUENCE_START } } }",
           "sequence_batching { control_input { name: \"C\" control { kind: "
           "CONTROL_SEQUENCE_CORRID data_type: TYPE_FP32 } } }",
           "sequence_batching { state { input_name: \"a\" output_name: \"b\" data_type: "
           "TYPE_FP32 dims: [100000000] } }",
       }) {
    auto parsed = SequenceConfig::FromModelConfig(Config(bad));
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(parsed.status().message().find("sequence_batching"), std::string::npos);
  }
}

}  // namespace
}  // namespace mm
