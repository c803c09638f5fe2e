// String forms of the engine's vocabulary. These strings are part of the
// public interface (D-Bus properties, status.json, the journal), so they are
// spelled once here and never derived from C++ identifiers.
#include "hostmaint/agent/model.hpp"

#include <array>
#include <utility>

#include "enum_names.hpp"

namespace hostmaint::agent {
namespace {

using detail::lookup;
using detail::nameOf;

constexpr std::array<std::pair<HostPhase, std::string_view>, 6> kHostPhaseNames{{
    {HostPhase::idle, "idle"},
    {HostPhase::scheduled, "scheduled"},
    {HostPhase::draining, "draining"},
    {HostPhase::empty, "empty"},
    {HostPhase::in_maintenance, "in-maintenance"},
    {HostPhase::restoring, "restoring"},
}};

constexpr std::array<std::pair<AckChoice, std::string_view>, 2> kAckChoiceNames{{
    {AckChoice::move, "move"},
    {AckChoice::keep, "keep"},
}};

constexpr std::array<std::pair<DomainStage, std::string_view>, 11> kDomainStageNames{{
    {DomainStage::planned, "planned"},
    {DomainStage::awaiting_ack, "awaiting-ack"},
    {DomainStage::waiting, "waiting"},
    {DomainStage::acting, "acting"},
    {DomainStage::done, "done"},
    {DomainStage::failed, "failed"},
    {DomainStage::blocked, "blocked"},
    {DomainStage::left, "left"},
    {DomainStage::restoring, "restoring"},
    {DomainStage::restored, "restored"},
    {DomainStage::restore_failed, "restore-failed"},
}};

constexpr std::array<std::pair<HostShutdownResult, std::string_view>, 10> kShutdownResultNames{{
    {HostShutdownResult::pending, "pending"},
    {HostShutdownResult::acting, "acting"},
    {HostShutdownResult::suspended, "suspended"},
    {HostShutdownResult::shut_down, "shut-down"},
    {HostShutdownResult::failed, "failed"},
    {HostShutdownResult::handed_over, "handed-over"},
    {HostShutdownResult::restoring, "restoring"},
    {HostShutdownResult::restored, "restored"},
    {HostShutdownResult::restore_failed, "restore-failed"},
    {HostShutdownResult::gone, "gone"},
}};

constexpr std::array<std::pair<HostShutdownPhase, std::string_view>, 4> kShutdownPhaseNames{{
    {HostShutdownPhase::in_progress, "in-progress"},
    {HostShutdownPhase::done, "done"},
    {HostShutdownPhase::restoring, "restoring"},
    {HostShutdownPhase::restored, "restored"},
}};

}  // namespace

std::string_view toString(HostShutdownResult result) {
  return nameOf(kShutdownResultNames, result);
}
std::optional<HostShutdownResult> parseHostShutdownResult(std::string_view text) {
  return lookup(kShutdownResultNames, text);
}

std::string_view toString(HostShutdownPhase phase) { return nameOf(kShutdownPhaseNames, phase); }
std::optional<HostShutdownPhase> parseHostShutdownPhase(std::string_view text) {
  return lookup(kShutdownPhaseNames, text);
}

std::string_view toString(HostPhase phase) { return nameOf(kHostPhaseNames, phase); }
std::optional<HostPhase> parseHostPhase(std::string_view text) {
  return lookup(kHostPhaseNames, text);
}

std::string_view toString(AckChoice choice) { return nameOf(kAckChoiceNames, choice); }
std::optional<AckChoice> parseAckChoice(std::string_view text) {
  return lookup(kAckChoiceNames, text);
}

std::string_view toString(DomainStage stage) { return nameOf(kDomainStageNames, stage); }
std::optional<DomainStage> parseDomainStage(std::string_view text) {
  return lookup(kDomainStageNames, text);
}

}  // namespace hostmaint::agent
