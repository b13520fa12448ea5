// The FIL backend's registration, with the engines (tree_model.h's
// LoadTreeModel) as its loader: built only where the engine target is.
#include "backends/fil/fil_backend.h"

namespace mm {

Status RegisterFilBackend(BackendRegistry& registry) {
  return registry.Register(
      {.name = std::string(fil::FilBackend::kName),
       .platforms = {},
       .default_model_file = "",
       .create = [](const BackendSettings& settings) -> StatusOr<std::unique_ptr<Backend>> {
         MM_ASSIGN_OR_RETURN(fil::TreeLibraryPaths libraries,
                             fil::TreeLibrariesFromSettings(settings));
         return fil::FilBackend::Create(
             {.libraries = std::move(libraries), .loader = &fil::LoadTreeModel});
       }});
}

}  // namespace mm
