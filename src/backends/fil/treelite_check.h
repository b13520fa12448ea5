// Checks of the files Treelite reads, before it reads them. Treelite's readers
// trust every length a file declares: its checkpoint reader (Treelite 4.8,
// src/serializer.cc via include/treelite/detail/serializer.h) resizes each
// array to the count it reads, zero-filling it, before it looks for the bytes,
// and its XGBoost legacy-binary loader (src/model_loader/xgboost_legacy.cc)
// does the same with its strings, nodes and leaf vectors. A damaged or hostile
// file of a few bytes could make the server allocate tens of GB (or abort).
// These walks read every declared length and count and refuse any that does
// not fit in the bytes that remain. Pure functions over bytes (no library),
// safe on any input; private to src/backends/fil/.
#pragma once

#include <string_view>

#include "core/status.h"

namespace mm::fil {

// A Treelite checkpoint (TreeliteSerializeModelToBytes, serialization format
// v4: docs/serialization/v4.rst). OK when `data` is exactly one v4 model: a
// 4.x version, float32/float32 or float64/float64 types, every array and
// string within the bytes that remain, num_tree no more than those bytes
// could hold, num_class with num_target entries, leaf_vector_shape with 2,
// target_id and class_id with num_tree; the values that size GTIL's per-row
// buffers bounded (leaf_vector_shape by the values the file could hold,
// num_target and each num_class by the trees or the leaf vectors' shape); each tree's per-node
// arrays with num_nodes (>= 1) entries and its statistics with 0 or num_nodes, optional fields
// within the bytes, and no bytes after the last tree. Anything else is INVALID_ARGUMENT naming the
// tree, the field and the byte offset.
Status CheckTreeliteCheckpoint(std::string_view data);

// XGBoost's legacy binary model format as Treelite's loader reads it: the
// learner's parameters, the objective's and booster's names (the booster
// "gbtree" or "dart"), num_class and num_target no more than the trees
// (Treelite sizes vectors by them), the trees (each 1 to 2^31-1 nodes, their nodes and
// statistics, a legacy leaf vector) and the per-tree info, all within the
// bytes. What follows (XGBoost's attributes) Treelite ignores, and so do we.
Status CheckXGBoostLegacyBinary(std::string_view data);

}  // namespace mm::fil
