#include "rpc/stream_responses.h"

#include <string>
#include <variant>

#include "rpc/grpc_codec.h"

namespace mm::rpc {

bool EmptyFinalWanted(const inference::ModelInferRequest& message) {
  const auto& p = message.parameters();
  auto it = p.find(std::string(kStreamEmptyFinalParam));
  return it != p.end() &&
         it->second.parameter_choice_case() == inference::InferParameter::kBoolParam &&
         it->second.bool_param();
}

bool EmptyFinalWanted(const InferRequest& request) {
  auto it = request.parameters.find(kStreamEmptyFinalParam);
  if (it == request.parameters.end()) return false;
  const bool* wanted = std::get_if<bool>(&it->second);
  return wanted != nullptr && *wanted;
}

void MarkFinal(bool final, inference::ModelStreamInferResponse* message) {
  (*message->mutable_infer_response()->mutable_parameters())[std::string(kStreamFinalParam)]
      .set_bool_param(final);
}

void SetStreamError(const Status& status, std::string_view request_id,
                    inference::ModelStreamInferResponse* message) {
  message->set_error_message(status.message());
  message->mutable_infer_response()->set_id(std::string(request_id));
}

bool StreamAnswer(std::string_view request_id, const Status& status, const InferResponse* response,
                  bool final_flag, inference::ModelStreamInferResponse* message) {
  bool write = true;
  if (status.ok()) {
    EncodeGrpcInferResponse(*response, message->mutable_infer_response());
    // The final flag alone: an empty response only when asked for.
    if (response->complete_only) {
      write = final_flag;
      message->mutable_infer_response()->clear_outputs();
    }
  } else {
    SetStreamError(status, request_id, message);
  }
  if (final_flag) MarkFinal(true, message);
  return write;
}

void StreamPartial(const InferRequest& request,
                   const StatusOr<std::unique_ptr<InferResponse>>& response,
                   inference::ModelStreamInferResponse* message) {
  if (response.ok()) {
    EncodeGrpcInferResponse(**response, message->mutable_infer_response());
  } else {
    SetStreamError(response.status(), request.id, message);
  }
  if (EmptyFinalWanted(request)) MarkFinal(false, message);
}

}  // namespace mm::rpc
