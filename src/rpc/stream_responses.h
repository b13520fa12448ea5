// The pure parts of ModelStreamInfer's responses, for every gRPC transport
// (grpc++ in src/grpc, the native one in src/http); reading and writing the
// stream itself is each transport's own.
//
// Triton's conventions, which tritonclient's stream callback expects:
//  - A request with the bool parameter triton_enable_empty_final_response
//    set to true gets the response parameter triton_final_response on each
//    of its responses (true on its last), and a final flag that came without
//    a response (InferResponse::complete_only) is written as an empty
//    response; without it, such a flag writes nothing.
//  - An error (a failed request, or a decoupled model's failed response) is
//    written as error_message, with the request's id in infer_response.
#pragma once

#include <memory>
#include <string_view>

#include "core/infer_request.h"
#include "core/status.h"
#include "grpc_service.pb.h"

namespace mm::rpc {

// The request parameter that asks for triton_final_response (a bool).
inline constexpr std::string_view kStreamEmptyFinalParam = "triton_enable_empty_final_response";
// The response parameter that says whether a response is its request's last (a bool).
inline constexpr std::string_view kStreamFinalParam = "triton_final_response";

// Whether a stream request asks for triton_final_response: its parameter
// kStreamEmptyFinalParam is a bool_param holding true. From the message (a
// request that did not decode), or from the decoded request.
bool EmptyFinalWanted(const inference::ModelInferRequest& message);
bool EmptyFinalWanted(const InferRequest& request);

// Sets triton_final_response on `message`'s infer_response to `final`.
void MarkFinal(bool final, inference::ModelStreamInferResponse* message);

// Fills `message` as the stream's answer to a failed request (or a failed
// response of a decoupled model): `status`'s message as error_message, the
// request's id in infer_response. `status` is not OK.
void SetStreamError(const Status& status, std::string_view request_id,
                    inference::ModelStreamInferResponse* message);

// Fills `message` with a request's answer (its last response, for a
// decoupled model): `response`'s outputs when `status` is OK (`response` is
// not null then), else the error. `final_flag`: the request asked for
// triton_final_response. False when nothing is to be written: a final flag
// that came without a response (response->complete_only) nobody asked for.
bool StreamAnswer(std::string_view request_id, const Status& status, const InferResponse* response,
                  bool final_flag, inference::ModelStreamInferResponse* message);

// Fills `message` with a decoupled request's response before its last
// (ResponseStream::Send): the response, or its error.
void StreamPartial(const InferRequest& request,
                   const StatusOr<std::unique_ptr<InferResponse>>& response,
                   inference::ModelStreamInferResponse* message);

}  // namespace mm::rpc
