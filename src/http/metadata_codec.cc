#include "http/metadata_codec.h"

#include "http/json_writer.h"

namespace mm {

namespace {

void AppendShape(std::string& out, const Shape& shape) {
  out += '[';
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ',';
    AppendJsonInt(out, shape[i]);
  }
  out += ']';
}

void AppendTensorMetadata(std::string& out, const std::vector<TensorMetadata>& tensors) {
  out += '[';
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (i) out += ',';
    out += "{\"name\":";
    AppendJsonString(out, tensors[i].name);
    out += ",\"datatype\":";
    AppendJsonString(out, DataTypeName(tensors[i].dtype));
    out += ",\"shape\":";
    AppendShape(out, tensors[i].shape);
    out += '}';
  }
  out += ']';
}

}  // namespace

std::string EncodeServerMetadata(const ServerMetadata& md) {
  std::string out = "{\"name\":";
  AppendJsonString(out, md.name);
  out += ",\"version\":";
  AppendJsonString(out, md.version);
  out += ",\"extensions\":[";
  for (size_t i = 0; i < md.extensions.size(); ++i) {
    if (i) out += ',';
    AppendJsonString(out, md.extensions[i]);
  }
  out += "]}";
  return out;
}

std::string EncodeModelMetadata(const ModelMetadata& md) {
  std::string out = "{\"name\":";
  AppendJsonString(out, md.name);
  out += ",\"versions\":[";
  for (size_t i = 0; i < md.versions.size(); ++i) {
    if (i) out += ',';
    AppendJsonString(out, md.versions[i]);
  }
  out += "],\"platform\":";
  AppendJsonString(out, md.platform);
  out += ",\"inputs\":";
  AppendTensorMetadata(out, md.inputs);
  out += ",\"outputs\":";
  AppendTensorMetadata(out, md.outputs);
  out += '}';
  return out;
}

}  // namespace mm
