#include "tandem/transfer/ucx_info.h"

#include <link.h>
#include <ucp/api/ucp.h>
#include <ucs/memory/memory_type.h>
#include <uct/api/uct.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ucx_handles.h"

namespace tandem::transfer {
namespace {

// Every transport name of every memory domain of every UCT component (what `ucx_info -d` lists),
// each once. A memory domain that does not open is skipped: its transports are not usable.
std::vector<std::string> TransportNames() {
  std::vector<std::string> names;
  uct_component_h* components = nullptr;
  unsigned num_components = 0;
  if (uct_query_components(&components, &num_components) != UCS_OK) return names;
  for (unsigned c = 0; c < num_components; ++c) {
    uct_component_attr_t attr{};
    attr.field_mask = UCT_COMPONENT_ATTR_FIELD_MD_RESOURCE_COUNT;
    if (uct_component_query(components[c], &attr) != UCS_OK || attr.md_resource_count == 0) continue;
    std::vector<uct_md_resource_desc_t> mds(attr.md_resource_count);
    attr.field_mask = UCT_COMPONENT_ATTR_FIELD_MD_RESOURCES;
    attr.md_resources = mds.data();
    if (uct_component_query(components[c], &attr) != UCS_OK) continue;
    for (const uct_md_resource_desc_t& md_resource : mds) {
      uct_md_config_t* config = nullptr;
      if (uct_md_config_read(components[c], nullptr, nullptr, &config) != UCS_OK) continue;
      uct_md_h md = nullptr;
      const ucs_status_t opened = uct_md_open(components[c], md_resource.md_name, config, &md);
      uct_config_release(config);
      if (opened != UCS_OK) continue;
      uct_tl_resource_desc_t* tls = nullptr;
      unsigned num_tls = 0;
      if (uct_md_query_tl_resources(md, &tls, &num_tls) == UCS_OK) {
        for (unsigned t = 0; t < num_tls; ++t) names.emplace_back(tls[t].tl_name);
        uct_release_tl_resource_list(tls);
      }
      uct_md_close(md);
    }
  }
  uct_release_component_list(components);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

// The memory types a UCP context made like the transport's (RMA and AM) accepts.
absl::StatusOr<std::vector<std::string>> MemoryTypeNames() {
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES;
  params.features = UCP_FEATURE_RMA | UCP_FEATURE_AM;
  ucp_config_t* raw_config = nullptr;
  ucs_status_t s = ucp_config_read(nullptr, nullptr, &raw_config);
  if (s != UCS_OK) return UcsError(s, "config_read");
  const UcpConfig config(raw_config);
  UcpContext context;
  s = context.Init(params, config.get());
  if (s != UCS_OK) return UcsError(s, "init");
  ucp_context_attr_t attr{};
  attr.field_mask = UCP_ATTR_FIELD_MEMORY_TYPES;
  s = ucp_context_query(context.get(), &attr);
  if (s != UCS_OK) return UcsError(s, "context_query");
  std::vector<std::string> names;
  for (int type = 0; type < UCS_MEMORY_TYPE_LAST; ++type) {
    if ((attr.memory_types & UCS_BIT(type)) != 0) names.emplace_back(ucs_memory_type_names[type]);
  }
  return names;
}

bool Contains(const std::vector<std::string>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

bool UcxInfo::HasTransport(std::string_view name) const { return Contains(transports, name); }
bool UcxInfo::HasMemoryType(std::string_view name) const { return Contains(memory_types, name); }

std::string UcxInfo::Summary() const {
  return absl::StrCat(
      "UCX ", version, " (", library_path.empty() ? "libucp not found" : library_path, "; modules from ",
      module_dir, ": ", modules.empty() ? "none" : absl::StrJoin(modules, ", "),
      "; transports: ", transports.empty() ? "none" : absl::StrJoin(transports, ", "),
      "; memory types: ", memory_types.empty() ? "none" : absl::StrJoin(memory_types, ", "), ")");
}

std::string UcxModuleDir(std::string_view libucs_path) {
  const std::size_t slash = libucs_path.rfind('/');
  if (slash == std::string_view::npos) return "./ucx";
  return std::string(libucs_path.substr(0, slash)) + "/ucx";
}

std::string LoadedLibraryPath(std::string_view prefix) {
  struct Search {
    std::string_view prefix;
    std::string path;
  } search{prefix, {}};
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t /*size*/, void* arg) -> int {
        auto* s = static_cast<Search*>(arg);
        const std::string_view name = info->dlpi_name != nullptr ? info->dlpi_name : "";
        const std::size_t slash = name.rfind('/');
        const std::string_view base = slash == std::string_view::npos ? name : name.substr(slash + 1);
        if (!base.starts_with(s->prefix)) return 0;
        s->path = std::string(name);
        return 1;
      },
      &search);
  return search.path;
}

absl::StatusOr<UcxInfo> QueryUcx() {
  UcxInfo info;
  info.version = ucp_get_version_string();
  info.compiled_version = absl::StrCat(UCP_API_MAJOR, ".", UCP_API_MINOR);
  info.library_path = LoadedLibraryPath("libucp.so");
  const std::string libucs = LoadedLibraryPath("libucs.so");
  info.module_dir = libucs.empty() ? "(libucs not found)" : UcxModuleDir(libucs);
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(info.module_dir, ec)) {
    const std::string name = entry.path().filename().string();
    // The names UCX opens: lib<framework>_<module> plus libucs's extension (".so.0" for "libucs.so.0").
    const std::size_t dot = libucs.find('.', libucs.rfind('/') + 1);
    const std::string ext = dot == std::string::npos ? ".so" : libucs.substr(dot);
    if (name.starts_with("lib") && name.ends_with(ext) && name.size() > ext.size() + 3)
      info.modules.push_back(name);
  }
  std::sort(info.modules.begin(), info.modules.end());
  info.transports = TransportNames();
  absl::StatusOr<std::vector<std::string>> memory_types = MemoryTypeNames();
  if (!memory_types.ok()) return memory_types.status();
  info.memory_types = *std::move(memory_types);
  return info;
}

}  // namespace tandem::transfer
