// The ONNX Runtime backend's shared vocabulary: ONNX element types to and
// from KServe data types, their names in messages, and ONNX Runtime's
// exceptions as a Status. Not a door: this folder only.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <optional>
#include <string>
#include <string_view>

#include "core/data_type.h"
#include "core/status.h"

namespace mm::ort {

// nullopt: no KServe data type (ONNX's float8s, complex numbers, ...).
std::optional<DataType> FromOnnx(ONNXTensorElementDataType type);
// UNDEFINED for a type ONNX has no element for.
ONNXTensorElementDataType ToOnnx(DataType type);
std::string OnnxElementName(ONNXTensorElementDataType type);
std::string_view OnnxKindName(ONNXType type);

// "model 'NAME'", the start of the backend's messages.
std::string ModelLabel(std::string_view model);
// ONNX Runtime's error as a Status: INVALID_ARGUMENT for a bad model or
// input, INTERNAL else; the message starts with `context`.
Status FromOrt(const Ort::Exception& e, std::string_view context);

}  // namespace mm::ort
