// The check of a LightGBM text model's trees (lightgbm_model.cc runs it on
// the text LightGBM loaded). A pure function over the text (no library), safe
// on any input. Private to src/backends/fil/.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/status.h"

namespace mm::fil {

// Checks every tree of `text` and counts the leaves into `*leaves`. It reads
// the trees as LightGBM's Tree(const char*) does (src/io/tree.cpp: the lines
// after "Tree=" up to a blank one, key=value, arrays split on ' '), but
// refuses what LightGBM would read differently from us: a line without '='
// (LightGBM's key would run on into the next line), a key given twice
// (LightGBM keeps the last), more than 22 lines, anything but plain integers.
// Each tree must pass CheckLightGBMTree (tree_check.h) with `num_features`,
// and the count of trees must be `num_trees` (LightGBM's own, so that none is
// read past). (Asking LightGBM for its own text back,
// LGBM_BoosterSaveModelToString, doubles a load's time: 8 ms more for 100
// trees.) INVALID_ARGUMENT naming the tree otherwise.
Status CheckLightGBMText(std::string_view text, int64_t num_trees, int64_t num_features,
                         uint64_t* leaves);

}  // namespace mm::fil
