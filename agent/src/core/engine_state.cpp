#include "engine_state.hpp"

#include "overloaded.hpp"

namespace hostmaint::agent {

DomainStage stageOf(const DomainState& state) {
  return std::visit(
      Overloaded{
          [](const stage::Planned&) { return DomainStage::planned; },
          [](const stage::AwaitingAck&) { return DomainStage::awaiting_ack; },
          [](const stage::Waiting&) { return DomainStage::waiting; },
          [](const stage::Acting&) { return DomainStage::acting; },
          [](const stage::Done&) { return DomainStage::done; },
          [](const stage::Failed&) { return DomainStage::failed; },
          [](const stage::Blocked&) { return DomainStage::blocked; },
          [](const stage::Left&) { return DomainStage::left; },
          [](const stage::Restoring&) { return DomainStage::restoring; },
          [](const stage::Restored&) { return DomainStage::restored; },
          [](const stage::RestoreFailed&) { return DomainStage::restore_failed; },
      },
      state);
}

std::optional<hv::ActionKind> DomainRecord::runningKind() const {
  if (const auto* acting = std::get_if<stage::Acting>(&state)) return acting->kind;
  if (const auto* restoring = std::get_if<stage::Restoring>(&state)) {
    if (restoring->started) return hv::ActionKind::start;
  }
  return std::nullopt;
}

void transition(DomainRecord& record, DomainState next) {
  const bool was_running = record.runningKind().has_value();
  record.state = std::move(next);
  if (was_running && !record.runningKind()) record.completion_pending = false;
  // Progress belongs to a running drain action only.
  if (!holds<stage::Acting>(record.state)) record.progress.reset();
}

}  // namespace hostmaint::agent
