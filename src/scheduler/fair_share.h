// FairShare: which model gets the next free execution slot.
//
// The policy core of DESIGN.md "Scheduling": one pool of execution slots is
// shared by every model, weighted fair across tenants first and then across
// the models of a tenant, so that a flooded model cannot starve the rest and
// no model with ready work waits forever. Only the policy lives here: no
// threads, no clock, no queues. Fairness is counted in virtual time, from the
// costs the caller charges (execution nanoseconds, or 1 per batch).
//
// Algorithm: two-level start-time fair queuing. Every tenant and every flow (a
// model) has a virtual time, the service charged to it divided by its weight;
// Next() takes the backlogged tenant with the least virtual time, then its
// backlogged flow with the least virtual time (ties: the older id). Each level
// keeps a system virtual time (never decreasing): the start tag of the latest
// service, i.e. at each Charge it moves up to the least of the charged
// member's virtual time before the charge and the backlogged members' virtual
// times. A member that becomes backlogged is raised to at least it, so idle
// time earns no credit to burst with later, and a member never falls behind
// it, so it cannot be starved either. Marking a flow idle moves no clock: a
// flow taken off the ready set while its execution runs, and put back when it
// ends, keeps its place (with the clock at the least backlogged time, it would
// be raised to the next flow's time at every return and lose its share).
//
// Invariants:
//  1. A tenant is in the ready set iff at least one of its flows is backlogged.
//  2. A backlogged member's virtual time is >= its level's system virtual time.
//  3. Between two picks of a flooded flow B, another flooded flow J of the same
//     tenant is picked at most floor(cost_B/w_B / (cost_J/w_J)) + 1 times; the
//     same bound holds between tenants. So every backlogged flow is picked
//     within a number of picks fixed by the weights and costs.
//
// Use: the caller keeps each flow's readiness current (MarkReady when the model
// has a batch that could run now, MarkIdle when it has none or no free
// instance), asks Next() when a slot frees, and charges the flow it starts.
// Next() changes nothing: with several free slots, charge each pick (an
// estimate such as the average execution time, or 1 per batch) before asking
// again, or the same flow comes back.
//
// Thread-safety: none. The caller serializes every call under its own lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "core/status.h"

namespace mm {

// A model's handle in a FairShare; never reused by the same FairShare.
enum class FlowId : uint64_t {};

struct FairShareOptions {
  // Virtual times are doubles. When a level's system virtual time passes this,
  // every virtual time of that level is shifted down by it (order kept), so
  // small costs over large weights are not lost to rounding on a long run.
  double rebase_above = 0x1p32;
};

class FairShare {
 public:
  using Options = FairShareOptions;

  explicit FairShare(Options options = {});
  FairShare(const FairShare&) = delete;
  FairShare& operator=(const FairShare&) = delete;

  // Creates `tenant` or changes its weight. A tenant added implicitly by
  // AddFlow has weight 1. A new weight applies to service charged from now on.
  // INVALID_ARGUMENT unless weight is finite and > 0.
  Status SetTenantWeight(std::string_view tenant, double weight);
  // Forgets a tenant with no flows: NOT_FOUND if unknown, FAILED_PRECONDITION
  // while it has flows.
  Status RemoveTenant(std::string_view tenant);

  // Adds model `model` of `tenant` (created with weight 1 when unknown) as an
  // idle flow. `weight` is its share within the tenant. INVALID_ARGUMENT for a
  // bad weight, ALREADY_EXISTS when the tenant already has that model.
  StatusOr<FlowId> AddFlow(std::string_view tenant, std::string_view model, double weight = 1.0);
  // A new weight applies to service charged from now on.
  Status SetFlowWeight(FlowId flow, double weight);
  // Drops the flow, backlogged or not; later calls with it answer NOT_FOUND.
  Status RemoveFlow(FlowId flow);

  // Readiness, idempotent. NOT_FOUND for an unknown flow.
  Status MarkReady(FlowId flow);
  Status MarkIdle(FlowId flow);

  // The backlogged flow that should get the next free slot; nullopt when none
  // is backlogged. O(1); changes nothing.
  std::optional<FlowId> Next() const;

  // Records `cost` of service for `flow` (backlogged or not: an execution may
  // finish after its model went idle): its virtual time advances by
  // cost / flow weight and its tenant's by cost / tenant weight. INVALID_ARGUMENT
  // unless cost is finite and > 0 (a zero charge would keep a flow at the head
  // for ever; charge at least one unit).
  Status Charge(FlowId flow, double cost);
  // Takes back `cost` charged to `flow` earlier (an estimate that proved too
  // high), never below its level's system virtual time: a refund cannot buy
  // service ahead of the others. INVALID_ARGUMENT unless cost is finite and
  // >= 0.
  Status Refund(FlowId flow, double cost);

  size_t flow_count() const { return flows_.size(); }
  size_t backlogged_count() const { return backlogged_; }

 private:
  // (virtual time, id): the order of a ready set; ties go to the older id.
  using Key = std::pair<double, uint64_t>;
  using ReadySet = std::set<Key>;

  struct Tenant {
    uint64_t id = 0;
    double weight = 1;
    double vtime = 0;
    // System virtual time among this tenant's flows.
    double flow_vnow = 0;
    ReadySet ready;                                       // backlogged flows
    std::map<std::string, uint64_t, std::less<>> models;  // name -> flow id
    ReadySet::iterator pos;     // in ready_tenants_, valid while !ready.empty()
    ReadySet::node_type spare;  // its node while not ready: no allocation per wake-up
  };
  struct Flow {
    Tenant* tenant = nullptr;  // node of tenants_, stable
    double weight = 1;
    double vtime = 0;
    bool backlogged = false;
    ReadySet::iterator pos;     // in tenant->ready, valid while backlogged
    ReadySet::node_type spare;  // its node while idle
    std::map<std::string, uint64_t, std::less<>>::iterator name;  // in tenant->models
  };

  Flow* Find(FlowId flow);
  // Moves `pos` in `set` to the key (vtime, id); returns the new position.
  static ReadySet::iterator Rekey(ReadySet& set, ReadySet::iterator pos, double vtime);
  // Inserts (vtime, id), reusing `spare` when it holds a node.
  static ReadySet::iterator Insert(ReadySet& set, ReadySet::node_type& spare, double vtime,
                                   uint64_t id);
  // Raises the system virtual times to the least of `flow_floor` (resp.
  // `tenant_floor`) and the backlogged virtual times of their level, then
  // rebases a level past options_.rebase_above.
  void AdvanceClocks(Tenant& tenant, double flow_floor, double tenant_floor);
  void RebaseFlows(Tenant& tenant);
  void RebaseTenants();

  const Options options_;
  std::unordered_map<uint64_t, Tenant> tenants_;  // by tenant id
  std::map<std::string, uint64_t, std::less<>> tenant_ids_;
  std::unordered_map<uint64_t, Flow> flows_;  // by flow id
  ReadySet ready_tenants_;                    // tenants with at least one backlogged flow
  double tenant_vnow_ = 0;                    // system virtual time among tenants
  size_t backlogged_ = 0;
  uint64_t next_tenant_id_ = 1;
  uint64_t next_flow_id_ = 1;
};

}  // namespace mm
