#include "scheduler/fair_share.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace mm {

namespace {

std::string Number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

Status CheckWeight(double weight, std::string_view what) {
  if (std::isfinite(weight) && weight > 0) return OkStatus();
  return InvalidArgument(std::string(what) + " weight must be a finite number > 0, got " +
                         Number(weight));
}

std::string FlowName(FlowId flow) { return "flow " + std::to_string(static_cast<uint64_t>(flow)); }

}  // namespace

FairShare::FairShare(Options options) : options_(options) {}

Status FairShare::SetTenantWeight(std::string_view tenant, double weight) {
  MM_RETURN_IF_ERROR(CheckWeight(weight, "tenant '" + std::string(tenant) + "'"));
  auto it = tenant_ids_.find(tenant);
  if (it == tenant_ids_.end()) {
    uint64_t id = next_tenant_id_++;
    tenant_ids_.emplace(std::string(tenant), id);
    Tenant& t = tenants_[id];
    t.id = id;
    t.vtime = tenant_vnow_;
    t.weight = weight;
    return OkStatus();
  }
  tenants_.at(it->second).weight = weight;
  return OkStatus();
}

Status FairShare::RemoveTenant(std::string_view tenant) {
  auto it = tenant_ids_.find(tenant);
  if (it == tenant_ids_.end()) return NotFound("no tenant '" + std::string(tenant) + "'");
  auto t = tenants_.find(it->second);
  if (!t->second.models.empty()) {
    return FailedPrecondition("tenant '" + std::string(tenant) + "' still has " +
                              std::to_string(t->second.models.size()) + " model(s)");
  }
  tenants_.erase(t);
  tenant_ids_.erase(it);
  return OkStatus();
}

StatusOr<FlowId> FairShare::AddFlow(std::string_view tenant, std::string_view model,
                                    double weight) {
  MM_RETURN_IF_ERROR(CheckWeight(
      weight, "model '" + std::string(model) + "' of tenant '" + std::string(tenant) + "'"));
  if (!tenant_ids_.contains(tenant)) MM_RETURN_IF_ERROR(SetTenantWeight(tenant, 1.0));
  Tenant& t = tenants_.at(tenant_ids_.find(tenant)->second);
  uint64_t id = next_flow_id_;
  auto [name, inserted] = t.models.emplace(std::string(model), id);
  if (!inserted) {
    return AlreadyExists("tenant '" + std::string(tenant) + "' already has model '" +
                         std::string(model) + "'");
  }
  ++next_flow_id_;
  Flow& f = flows_[id];
  f.tenant = &t;
  f.weight = weight;
  f.vtime = t.flow_vnow;
  f.name = name;
  return static_cast<FlowId>(id);
}

FairShare::Flow* FairShare::Find(FlowId flow) {
  auto it = flows_.find(static_cast<uint64_t>(flow));
  return it == flows_.end() ? nullptr : &it->second;
}

Status FairShare::SetFlowWeight(FlowId flow, double weight) {
  Flow* f = Find(flow);
  if (f == nullptr) return NotFound("no " + FlowName(flow));
  MM_RETURN_IF_ERROR(CheckWeight(weight, FlowName(flow)));
  f->weight = weight;
  return OkStatus();
}

Status FairShare::RemoveFlow(FlowId flow) {
  Flow* f = Find(flow);
  if (f == nullptr) return NotFound("no " + FlowName(flow));
  MM_RETURN_IF_ERROR(MarkIdle(flow));
  f->tenant->models.erase(f->name);
  flows_.erase(static_cast<uint64_t>(flow));
  return OkStatus();
}

Status FairShare::MarkReady(FlowId flow) {
  Flow* f = Find(flow);
  if (f == nullptr) return NotFound("no " + FlowName(flow));
  if (f->backlogged) return OkStatus();
  Tenant& t = *f->tenant;
  // No credit for time spent idle: start no earlier than the level's clock.
  f->vtime = std::max(f->vtime, t.flow_vnow);
  if (t.ready.empty()) {
    t.vtime = std::max(t.vtime, tenant_vnow_);
    t.pos = Insert(ready_tenants_, t.spare, t.vtime, t.id);
  }
  f->pos = Insert(t.ready, f->spare, f->vtime, static_cast<uint64_t>(flow));
  f->backlogged = true;
  ++backlogged_;
  return OkStatus();
}

Status FairShare::MarkIdle(FlowId flow) {
  Flow* f = Find(flow);
  if (f == nullptr) return NotFound("no " + FlowName(flow));
  if (!f->backlogged) return OkStatus();
  Tenant& t = *f->tenant;
  f->spare = t.ready.extract(f->pos);
  if (t.ready.empty()) t.spare = ready_tenants_.extract(t.pos);
  f->backlogged = false;
  --backlogged_;
  return OkStatus();
}

std::optional<FlowId> FairShare::Next() const {
  if (ready_tenants_.empty()) return std::nullopt;
  const Tenant& t = tenants_.at(ready_tenants_.begin()->second);
  return static_cast<FlowId>(t.ready.begin()->second);
}

Status FairShare::Charge(FlowId flow, double cost) {
  Flow* f = Find(flow);
  if (f == nullptr) return NotFound("no " + FlowName(flow));
  if (!std::isfinite(cost) || cost <= 0) {
    return InvalidArgument("cost charged to " + FlowName(flow) +
                           " must be a finite number > 0, got " + Number(cost));
  }
  Tenant& t = *f->tenant;
  const double flow_start = f->vtime;
  const double tenant_start = t.vtime;
  f->vtime += cost / f->weight;
  t.vtime += cost / t.weight;
  if (f->backlogged) f->pos = Rekey(t.ready, f->pos, f->vtime);
  if (!t.ready.empty()) t.pos = Rekey(ready_tenants_, t.pos, t.vtime);
  AdvanceClocks(t, flow_start, tenant_start);
  return OkStatus();
}

Status FairShare::Refund(FlowId flow, double cost) {
  Flow* f = Find(flow);
  if (f == nullptr) return NotFound("no " + FlowName(flow));
  if (!std::isfinite(cost) || cost < 0) {
    return InvalidArgument("cost refunded to " + FlowName(flow) +
                           " must be a finite number >= 0, got " + Number(cost));
  }
  Tenant& t = *f->tenant;
  f->vtime = std::max(f->vtime - cost / f->weight, t.flow_vnow);
  t.vtime = std::max(t.vtime - cost / t.weight, tenant_vnow_);
  if (f->backlogged) f->pos = Rekey(t.ready, f->pos, f->vtime);
  if (!t.ready.empty()) t.pos = Rekey(ready_tenants_, t.pos, t.vtime);
  // The clocks never go back: nothing is below them after the clamp.
  return OkStatus();
}

FairShare::ReadySet::iterator FairShare::Insert(ReadySet& set, ReadySet::node_type& spare,
                                                double vtime, uint64_t id) {
  if (spare.empty()) return set.emplace(vtime, id).first;
  spare.value() = {vtime, id};
  return set.insert(std::move(spare)).position;
}

FairShare::ReadySet::iterator FairShare::Rekey(ReadySet& set, ReadySet::iterator pos,
                                               double vtime) {
  // Reuses the node: no allocation on the hot path.
  auto node = set.extract(pos);
  node.value().first = vtime;
  return set.insert(std::move(node)).position;
}

void FairShare::AdvanceClocks(Tenant& tenant, double flow_floor, double tenant_floor) {
  if (!tenant.ready.empty()) flow_floor = std::min(flow_floor, tenant.ready.begin()->first);
  tenant.flow_vnow = std::max(tenant.flow_vnow, flow_floor);
  if (!ready_tenants_.empty()) tenant_floor = std::min(tenant_floor, ready_tenants_.begin()->first);
  tenant_vnow_ = std::max(tenant_vnow_, tenant_floor);
  if (tenant.flow_vnow > options_.rebase_above) RebaseFlows(tenant);
  if (tenant_vnow_ > options_.rebase_above) RebaseTenants();
}

// Shifting every virtual time of a level by the same amount changes no
// decision: backlogged members stay >= the clock (now 0), idle ones keep their
// distance to it. The sets are rebuilt because rounding may create ties.
void FairShare::RebaseFlows(Tenant& tenant) {
  const double offset = tenant.flow_vnow;
  tenant.flow_vnow = 0;
  tenant.ready.clear();
  for (const auto& [name, id] : tenant.models) {
    Flow& f = flows_.at(id);
    f.vtime -= offset;
    if (f.backlogged) f.pos = tenant.ready.emplace(f.vtime, id).first;
  }
}

void FairShare::RebaseTenants() {
  const double offset = tenant_vnow_;
  tenant_vnow_ = 0;
  ready_tenants_.clear();
  for (auto& [id, t] : tenants_) {
    t.vtime -= offset;
    if (!t.ready.empty()) t.pos = ready_tenants_.emplace(t.vtime, id).first;
  }
}

}  // namespace mm
