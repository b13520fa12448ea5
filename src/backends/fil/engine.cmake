# The FIL backend's engine (tree_model.h): XGBoost's, LightGBM's and
# Treelite's own libraries, opened with dlopen at the first model that needs
# each (no link-time dependency). Included by src/backends/fil/CMakeLists.txt;
# mm_backend_fil links mm_fil_engine.
#
# The libraries' default paths come from build/fil.env, which
# scripts/install-deps.sh writes (FIL_XGBOOST_LIBRARY, FIL_LIGHTGBM_LIBRARY,
# FIL_TREELITE_LIBRARY); -DFIL_XGBOOST_LIBRARY=... overrides one. A path left
# empty makes the backend refuse that library's models, saying how to get it.
set(FIL_ENV_FILE ${CMAKE_SOURCE_DIR}/build/fil.env)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${FIL_ENV_FILE})
if(EXISTS ${FIL_ENV_FILE})
  file(STRINGS ${FIL_ENV_FILE} _fil_lines)
  foreach(_line IN LISTS _fil_lines)
    if(_line MATCHES "^(FIL_[A-Z_]+_LIBRARY)=(.*)$")
      set(_name ${CMAKE_MATCH_1})
      if(NOT ${_name})  # a -D value wins
        set(${_name} ${CMAKE_MATCH_2})
      endif()
    endif()
  endforeach()
else()
  message(WARNING "build/fil.env not found: tree models will need --backend-config=fil,"
                  "<library>-library=PATH (run scripts/install-deps.sh)")
endif()

mmserve_library(mm_fil_engine
  SOURCES tree_model.cc tree_libraries.cc tree_check.cc xgboost_check.cc fil_output.cc xgboost_model.cc lightgbm_model.cc
    treelite_model.cc
  DEPS mm_core spdlog::spdlog simdjson::simdjson ${CMAKE_DL_LIBS})
target_compile_definitions(mm_fil_engine PRIVATE
  MMSERVE_FIL_XGBOOST_LIBRARY="${FIL_XGBOOST_LIBRARY}"
  MMSERVE_FIL_LIGHTGBM_LIBRARY="${FIL_LIGHTGBM_LIBRARY}"
  MMSERVE_FIL_TREELITE_LIBRARY="${FIL_TREELITE_LIBRARY}")
