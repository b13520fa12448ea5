#pragma once

// The source tree's root, for tests that read files in it (examples/models,
// testdata): MMSERVE_SOURCE_DIR "/examples/...". Only source_dir.cc is
// compiled with the path, so every other test file compiles the same in any
// clone, and ccache (CMakeLists.txt) finds it whatever the clone's path.
const char* MmserveSourceDir();

#define MMSERVE_SOURCE_DIR (MmserveSourceDir())
