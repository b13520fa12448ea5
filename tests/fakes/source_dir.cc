#include "source_dir.h"

const char* MmserveSourceDir() { return MMSERVE_SOURCE_DIR_PATH; }
