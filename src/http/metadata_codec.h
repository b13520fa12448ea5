// Bodies of the KServe v2 metadata endpoints: GET /v2 (the server) and
// GET /v2/models/{m}[/versions/{v}] (a model). Pure functions, no I/O.
#pragma once

#include <string>

#include "service/inference_service.h"

namespace mm {

// {"name":..,"version":..,"extensions":[..]}
std::string EncodeServerMetadata(const ServerMetadata& md);

// {"name":..,"versions":[..],"platform":..,"inputs":[..],"outputs":[..]}, each
// tensor as {"name":..,"datatype":..,"shape":[..]} (-1 for a variable dim).
std::string EncodeModelMetadata(const ModelMetadata& md);

}  // namespace mm
