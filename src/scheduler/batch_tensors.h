// The tensor side of dynamic batching, as pure functions: deciding whether
// requests may share a batch, concatenating their inputs along dim 0 into one
// batched request, and splitting the batched response back into one response
// per request. The dynamic batcher decides *which* requests to batch; this file
// only moves bytes, and copies each input exactly once (straight into the batch
// buffer). Outputs are never copied: each request's response views its rows of
// the batched response's buffers.
//
// Conventions for a batching model (max_batch_size > 0): dim 0 of every input
// and every output is the batch dimension. Requests are assumed validated
// against the model config (names unique, sizes consistent with shapes); the
// functions still check what they rely on and never read out of bounds.
//
// Thread-safety: every function is pure; none keeps state.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/infer_request.h"
#include "core/status.h"

namespace mm {

// The batch size of a request for a batching model: dim 0 of its inputs.
// INVALID_ARGUMENT when the request has no inputs, an input has no dims or a
// negative dim 0, or inputs disagree on dim 0
// ("input 'b': batch dimension 3 differs from input 'a''s 2").
// A batch size of 0 is allowed (the request contributes no rows).
StatusOr<int64_t> RequestBatchSize(const InferRequest& request);

// Whether two requests may share one batch: the same set of input names (in
// any order), each with the same dtype, at least one dim, and the same dims
// after dim 0. Requested outputs need not agree (see MergeBatch). Model name,
// version and parameters are not compared: the caller batches within one
// model version. Cheap: no allocation, O(inputs) when both list their inputs in
// the same order, O(inputs^2) at worst. Assumes input names are unique within
// each request (validation guarantees it; MergeBatch checks it).
bool CanBatchTogether(const InferRequest& a, const InferRequest& b);

// Concatenates the requests' inputs along dim 0 into one request. Each input
// of the result owns one new buffer (Tensor::owner), sized once and filled with
// one copy per request; BYTES inputs (length-prefixed elements) concatenate
// byte-wise. Inputs appear in the first request's order.
//
// The result: model_name and model_version from the first request; id empty;
// no request parameters; input tensors without parameters (shared-memory
// references were resolved into `data` before scheduling); requested outputs
// the union of the requests' (by name, first-seen order, without parameters),
// or none (meaning all) when any request asks for all. `body` is null.
//
// A single request is not copied: the result's inputs alias its data, and the
// result holds the request's `body` and each input's `owner`, so it stays valid
// after the original request is gone. Otherwise the result does not refer to
// the requests at all.
//
// INVALID_ARGUMENT when `requests` is empty, an input name repeats, some pair
// cannot batch together (naming the input and the request's position), a
// batch size is invalid (see RequestBatchSize), or a fixed-size input's byte
// size does not match its shape (or the batch's would overflow).
StatusOr<std::unique_ptr<InferRequest>> MergeBatch(std::span<InferRequest* const> requests);

// Splits a batched response back into one response per request, in order:
// request i gets rows [offset_i, offset_i + batch_sizes[i]) of every output,
// where offset_i is the sum of the batch sizes before it. Each output tensor is
// a view into the batched output's buffer whose `owner` shares ownership of
// `batched`, so the views stay valid after the caller drops `batched` and the
// requests; nothing is copied. BYTES outputs are split by element (elements per
// row = product of the dims after dim 0), still as views.
//
// Response i carries model_name, model_version and id from requests[i], the
// batched response's parameters, and only the outputs requests[i] asked for
// (all when it asked for none), in the batched response's order.
//
// INTERNAL (naming the output) when an output has no dims, its dim 0 is not
// the sum of the batch sizes, its byte size does not match its shape, its
// BYTES layout is malformed, or a requested output is missing; also when
// `requests` and `batch_sizes` differ in length or a batch size is negative.
StatusOr<std::vector<std::unique_ptr<InferResponse>>> SplitBatch(
    std::shared_ptr<InferResponse> batched, std::span<InferRequest* const> requests,
    std::span<const int64_t> batch_sizes);

}  // namespace mm
