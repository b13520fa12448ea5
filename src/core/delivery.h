// DeliveryReceipt: what a response still owes once its transport knows
// whether the client got it. The service charges a request's tenant for the
// bytes it was sent and holds its concurrency slot until then (usage bills
// bytes actually sent; quotas count unsent work), so it hands each successful
// response a receipt, and the transport settles it when its write of the
// response completes (delivered) or fails or is abandoned (not delivered).
//
// Contract:
//  1. A receipt is settled at most once: Settle(true|false), or, if nobody
//     settled it, its destructor settles it as not delivered. So a transport
//     that drops a response (an encoding error, a client gone, a caller that
//     does not know about delivery) never leaks a quota slot.
//  2. Settling runs the owner's code synchronously on the settling thread;
//     it takes no lock and does not block (atomic counters), so a transport
//     may settle while holding its own lock.
//  3. Move-only; the empty receipt (default) settles nothing.
//
// Thread-safety: a receipt is used by one thread at a time (it travels with
// its response); settling from any thread is fine.
#pragma once

#include <utility>

namespace mm {

class DeliveryReceipt {
 public:
  // What settling tells; implemented by whoever issued the receipt. Called
  // exactly once per receipt, after which the receipt no longer refers to it.
  class Settler {
   public:
    virtual void Settle(bool delivered) = 0;

   protected:
    ~Settler() = default;
  };

  DeliveryReceipt() = default;
  explicit DeliveryReceipt(Settler* settler) : settler_(settler) {}
  DeliveryReceipt(DeliveryReceipt&& other) noexcept
      : settler_(std::exchange(other.settler_, nullptr)) {}
  DeliveryReceipt& operator=(DeliveryReceipt&& other) noexcept {
    if (this != &other) {
      Settle(false);
      settler_ = std::exchange(other.settler_, nullptr);
    }
    return *this;
  }
  DeliveryReceipt(const DeliveryReceipt&) = delete;
  DeliveryReceipt& operator=(const DeliveryReceipt&) = delete;
  ~DeliveryReceipt() { Settle(false); }

  // `delivered`: the transport wrote the whole response to its client.
  void Settle(bool delivered) {
    if (Settler* s = std::exchange(settler_, nullptr)) s->Settle(delivered);
  }
  bool pending() const { return settler_ != nullptr; }

 private:
  Settler* settler_ = nullptr;
};

}  // namespace mm
