// Policy vocabulary, durations, the validator and the metadata parser.
#include "hostmaint/agent/policy.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "hostmaint/agent/model.hpp"

namespace hostmaint::agent {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

constexpr const char* kNs = "https://hostmaint.org/xmlns/policy/1";

std::string policyXml(const std::string& children, const std::string& prefix = "hostmaint") {
  std::string open = prefix.empty()
                         ? "<policy xmlns=\"" + std::string(kNs) + "\">"
                         : "<" + prefix + ":policy xmlns:" + prefix + "=\"" + kNs + "\">";
  std::string close = prefix.empty() ? "</policy>" : "</" + prefix + ":policy>";
  return open + children + close;
}

std::string element(const std::string& key, const std::string& value,
                    const std::string& prefix = "hostmaint") {
  return "<" + prefix + ":" + key + ">" + value + "</" + prefix + ":" + key + ">";
}

DomainPolicy applyOk(const std::string& xml, const DomainPolicy& defaults = {}) {
  PolicyResult result = applyPolicyMetadata(defaults, xml);
  if (const auto* error = std::get_if<PolicyError>(&result)) {
    ADD_FAILURE() << "unexpected policy error: " << error->message << "\nfor: " << xml;
    return defaults;
  }
  return std::get<DomainPolicy>(result);
}

std::string applyError(const std::string& xml) {
  PolicyResult result = applyPolicyMetadata(DomainPolicy{}, xml);
  if (const auto* error = std::get_if<PolicyError>(&result)) return error->message;
  ADD_FAILURE() << "expected a policy error for: " << xml;
  return {};
}

std::string keyError(const std::string& key, const std::string& value) {
  return applyError(policyXml(element(key, value)));
}

TEST(PolicyStrings, ActionsRoundTripInKebabCase) {
  for (auto action :
       {MaintenanceAction::live_migrate, MaintenanceAction::cold_migrate,
        MaintenanceAction::suspend, MaintenanceAction::shutdown, MaintenanceAction::owner}) {
    EXPECT_EQ(parseMaintenanceAction(toString(action)), action);
  }
  EXPECT_EQ(toString(MaintenanceAction::live_migrate), "live-migrate");
  EXPECT_EQ(toString(MaintenanceAction::cold_migrate), "cold-migrate");
  EXPECT_EQ(parseMaintenanceAction("live_migrate"), std::nullopt);
  EXPECT_EQ(parseHostShutdownAction("shutdown"), HostShutdownAction::shutdown);
  EXPECT_EQ(parseHostShutdownAction("owner"), std::nullopt);
  EXPECT_EQ(parseAckTimeoutAction("block"), AckTimeoutAction::block);
  EXPECT_EQ(toString(AckTimeoutAction::proceed), "proceed");
}

TEST(PolicyStrings, ModelStringsRoundTrip) {
  EXPECT_EQ(toString(HostPhase::in_maintenance), "in-maintenance");
  EXPECT_EQ(parseHostPhase("in-maintenance"), HostPhase::in_maintenance);
  EXPECT_EQ(parseHostPhase("in_maintenance"), std::nullopt);
  EXPECT_EQ(toString(DomainStage::awaiting_ack), "awaiting-ack");
  EXPECT_EQ(toString(DomainStage::restore_failed), "restore-failed");
  for (int i = 0; i <= static_cast<int>(DomainStage::restore_failed); ++i) {
    auto stage = static_cast<DomainStage>(i);
    EXPECT_EQ(parseDomainStage(toString(stage)), stage) << toString(stage);
  }
  EXPECT_EQ(parseAckChoice("keep"), AckChoice::keep);
  EXPECT_EQ(parseAckChoice("stay"), std::nullopt);
}

TEST(PolicyStrings, KeepsOnHostAndMigration) {
  EXPECT_TRUE(keepsDomainOnHost(MaintenanceAction::suspend));
  EXPECT_TRUE(keepsDomainOnHost(MaintenanceAction::shutdown));
  EXPECT_FALSE(keepsDomainOnHost(MaintenanceAction::owner));
  EXPECT_FALSE(keepsDomainOnHost(MaintenanceAction::cold_migrate));
  EXPECT_TRUE(isMigration(MaintenanceAction::live_migrate));
  EXPECT_TRUE(isMigration(MaintenanceAction::cold_migrate));
  EXPECT_FALSE(isMigration(MaintenanceAction::suspend));
}

TEST(Duration, ParsesUnitsAndBareSeconds) {
  EXPECT_EQ(parseDuration("90s"), 90s);
  EXPECT_EQ(parseDuration("30m"), 30min);
  EXPECT_EQ(parseDuration("2h"), 2h);
  EXPECT_EQ(parseDuration("1d"), 24h);
  EXPECT_EQ(parseDuration("1h30m"), 90min);
  EXPECT_EQ(parseDuration("1d2h3m4s"), 24h + 2h + 3min + 4s);
  EXPECT_EQ(parseDuration("45"), 45s);
  EXPECT_EQ(parseDuration("0"), 0s);
  EXPECT_EQ(parseDuration("0s"), 0s);
}

TEST(Duration, RejectsGarbageNegativesAndOverflow) {
  for (const char* bad : {"", "-5", "-5m", "5x", "m", "1.5h", "1h 30m", " 30m", "30m ", "30m1h",
                          "1h1h", "1hh", "99999999999999999999", "9999999999d", "3651d", "1e3"}) {
    EXPECT_EQ(parseDuration(bad), std::nullopt) << "'" << bad << "'";
  }
  EXPECT_EQ(parseDuration("3650d"), std::chrono::days(3650));
}

TEST(Duration, FormatsCompactly) {
  EXPECT_EQ(formatDuration(0s), "0s");
  EXPECT_EQ(formatDuration(45s), "45s");
  EXPECT_EQ(formatDuration(90min), "1h30m");
  EXPECT_EQ(formatDuration(90s), "1m30s");
  EXPECT_EQ(formatDuration(26h), "1d2h");
  for (auto value : {0s, 1s, 59s, 3600s, 86461s}) {
    EXPECT_EQ(parseDuration(formatDuration(value)), value);
  }
}

TEST(Validate, DefaultsAreValid) { EXPECT_EQ(validatePolicy(DomainPolicy{}), std::nullopt); }

TEST(Validate, RemovalMustNotKeepTheDomain) {
  DomainPolicy policy;
  policy.removal_action = MaintenanceAction::suspend;
  auto error = validatePolicy(policy);
  ASSERT_TRUE(error);
  EXPECT_THAT(*error, HasSubstr("removal_action: 'suspend'"));

  policy = {};
  policy.removal_fallback_action = MaintenanceAction::shutdown;
  error = validatePolicy(policy);
  ASSERT_TRUE(error);
  EXPECT_THAT(*error, HasSubstr("removal_fallback_action: 'shutdown'"));

  policy = {};
  policy.removal_action = MaintenanceAction::cold_migrate;
  policy.removal_fallback_action = MaintenanceAction::owner;
  EXPECT_EQ(validatePolicy(policy), std::nullopt);
}

TEST(Validate, RangesAndTimeouts) {
  DomainPolicy policy;
  policy.max_impacted_members = 0;
  EXPECT_THAT(validatePolicy(policy).value_or(""), HasSubstr("max_impacted_members"));
  policy = {};
  policy.shutdown_timeout = 0s;
  EXPECT_THAT(validatePolicy(policy).value_or(""), HasSubstr("shutdown_timeout"));
  policy = {};
  policy.priority = 1001;
  EXPECT_THAT(validatePolicy(policy).value_or(""), HasSubstr("priority"));
  policy = {};
  policy.ack_timeout = 0s;
  EXPECT_EQ(validatePolicy(policy), std::nullopt) << "ack_timeout only matters with ack_required";
  policy.ack_required = true;
  EXPECT_THAT(validatePolicy(policy).value_or(""), HasSubstr("ack_timeout"));
  policy = {};
  policy.maintenance_action = MaintenanceAction::suspend;
  EXPECT_EQ(validatePolicy(policy), std::nullopt) << "fallback equal to the action is allowed";
}

TEST(Metadata, EveryKeyIsApplied) {
  std::string children =
      element("maintenance_action", "cold-migrate") + element("removal_action", "owner") +
      element("fallback_action", "shutdown") + element("removal_fallback_action", "cold-migrate") +
      element("host_shutdown_action", "shutdown") + element("ack_required", "yes") +
      element("ack_timeout", "2h") + element("ack_timeout_action", "block") +
      element("lead_time", "30m") + element("group", "db-cluster") +
      element("max_impacted_members", "2") + element("recovery_time", "5m") +
      element("priority", "-20") + element("shutdown_timeout", "45") +
      element("force_stop", "false");
  DomainPolicy policy = applyOk(policyXml(children));
  EXPECT_EQ(policy.maintenance_action, MaintenanceAction::cold_migrate);
  EXPECT_EQ(policy.removal_action, MaintenanceAction::owner);
  EXPECT_EQ(policy.fallback_action, MaintenanceAction::shutdown);
  EXPECT_EQ(policy.removal_fallback_action, MaintenanceAction::cold_migrate);
  EXPECT_EQ(policy.host_shutdown_action, HostShutdownAction::shutdown);
  EXPECT_TRUE(policy.ack_required);
  EXPECT_EQ(policy.ack_timeout, 2h);
  EXPECT_EQ(policy.ack_timeout_action, AckTimeoutAction::block);
  EXPECT_EQ(policy.lead_time, 30min);
  EXPECT_EQ(policy.group, "db-cluster");
  EXPECT_EQ(policy.max_impacted_members, 2u);
  EXPECT_EQ(policy.recovery_time, 5min);
  EXPECT_EQ(policy.priority, -20);
  EXPECT_EQ(policy.shutdown_timeout, 45s);
  EXPECT_FALSE(policy.force_stop);
}

TEST(Metadata, UnsetKeysKeepTheDefaults) {
  DomainPolicy defaults;
  defaults.priority = 7;
  defaults.group = "web";
  DomainPolicy policy = applyOk(policyXml(element("maintenance_action", "suspend")), defaults);
  EXPECT_EQ(policy.maintenance_action, MaintenanceAction::suspend);
  EXPECT_EQ(policy.priority, 7);
  EXPECT_EQ(policy.group, "web");
}

TEST(Metadata, EmptyMetadataMeansDefaults) {
  DomainPolicy defaults;
  defaults.priority = 3;
  EXPECT_EQ(applyOk("", defaults).priority, 3);
  EXPECT_EQ(applyOk("  \n", defaults).priority, 3);
}

TEST(Metadata, BooleansAcceptTheDocumentedSpellings) {
  for (const char* yes : {"true", "yes", "1"}) {
    EXPECT_TRUE(applyOk(policyXml(element("ack_required", yes))).ack_required) << yes;
  }
  for (const char* no : {"false", "no", "0"}) {
    EXPECT_FALSE(applyOk(policyXml(element("force_stop", no))).force_stop) << no;
  }
}

TEST(Metadata, ValuesAreTrimmed) {
  EXPECT_EQ(applyOk(policyXml(element("priority", "\n  5\n"))).priority, 5);
}

TEST(Metadata, BadValuesNameKeyValueAndChoices) {
  EXPECT_EQ(keyError("maintenance_action", "teleport"),
            "maintenance_action: 'teleport' is not one of live-migrate, cold-migrate, suspend, "
            "shutdown, owner");
  EXPECT_THAT(keyError("removal_action", "beam"),
              HasSubstr("removal_action: 'beam' is not one of"));
  EXPECT_THAT(keyError("fallback_action", "x"), HasSubstr("fallback_action: 'x'"));
  EXPECT_THAT(keyError("removal_fallback_action", "x"), HasSubstr("removal_fallback_action: 'x'"));
  EXPECT_EQ(keyError("host_shutdown_action", "owner"),
            "host_shutdown_action: 'owner' is not one of suspend, shutdown");
  EXPECT_EQ(keyError("ack_required", "maybe"),
            "ack_required: 'maybe' is not one of true, false, yes, no, 1, 0");
  EXPECT_THAT(keyError("ack_timeout", "soon"), HasSubstr("ack_timeout: 'soon' is not a duration"));
  EXPECT_EQ(keyError("ack_timeout_action", "wait"),
            "ack_timeout_action: 'wait' is not one of proceed, block");
  EXPECT_THAT(keyError("lead_time", "-1m"), HasSubstr("lead_time: '-1m' is not a duration"));
  EXPECT_THAT(keyError("group", std::string(129, 'g')),
              HasSubstr("group: group names are at most"));
  EXPECT_EQ(keyError("max_impacted_members", "0"),
            "max_impacted_members: must be between 1 and 100000, got 0");
  EXPECT_EQ(keyError("max_impacted_members", "two"),
            "max_impacted_members: 'two' is not an integer");
  EXPECT_THAT(keyError("recovery_time", "1w"), HasSubstr("recovery_time: '1w'"));
  EXPECT_EQ(keyError("priority", "5000"), "priority: must be between -1000 and 1000, got 5000");
  EXPECT_EQ(keyError("priority", "99999999999999999999"),
            "priority: must be between -1000 and 1000, got 99999999999999999999");
  EXPECT_THAT(keyError("shutdown_timeout", "0"),
              HasSubstr("shutdown_timeout: must be at least 1s"));
  EXPECT_THAT(keyError("force_stop", ""), HasSubstr("force_stop: '' is not one of"));
}

TEST(Metadata, RemovalActionSuspendIsRejected) {
  EXPECT_THAT(keyError("removal_action", "suspend"),
              HasSubstr("removal_action: 'suspend' keeps the domain on the host"));
}

TEST(Metadata, AckRequiredNeedsATimeout) {
  std::string xml = policyXml(element("ack_required", "true") + element("ack_timeout", "0"));
  EXPECT_THAT(applyError(xml), HasSubstr("ack_timeout: must be at least 1s"));
}

TEST(Metadata, AnyPrefixBoundToTheNamespaceWorks) {
  for (const std::string prefix : {"hostmaint", "hm", "ns0"}) {
    DomainPolicy policy = applyOk(policyXml(element("priority", "9", prefix), prefix));
    EXPECT_EQ(policy.priority, 9) << prefix;
  }
  // Default namespace, as some tools write it.
  EXPECT_EQ(applyOk(policyXml("<priority>4</priority>", "")).priority, 4);
  // A child may bind its own prefix to the same namespace.
  std::string xml = policyXml("<x:priority xmlns:x=\"" + std::string(kNs) + "\">6</x:priority>");
  EXPECT_EQ(applyOk(xml).priority, 6);
}

TEST(Metadata, ElementAsLibvirtReturnsItWithoutNamespaceIsAccepted) {
  // virDomainGetMetadata(VIR_DOMAIN_METADATA_ELEMENT, uri) strips the namespace.
  EXPECT_EQ(applyOk("<policy>\n  <priority>7</priority>\n</policy>").priority, 7);
  EXPECT_EQ(applyOk("<policy/>"), DomainPolicy{});
  // Children must then be in no namespace too.
  EXPECT_THAT(applyError("<policy><hm:priority xmlns:hm=\"" + std::string(kNs) +
                         "\">1</hm:priority></policy>"),
              HasSubstr("unknown element 'priority' in namespace"));
}

TEST(Metadata, WrongNamespaceOrRootIsRejected) {
  EXPECT_THAT(applyError("<hm:policy xmlns:hm=\"https://example.org/other\"/>"),
              HasSubstr("must be a 'policy' element in namespace"));
  EXPECT_THAT(applyError("<hostmaint:rules xmlns:hostmaint=\"" + std::string(kNs) + "\"/>"),
              HasSubstr("found 'rules'"));
  EXPECT_THAT(applyError(policyXml("<other:priority xmlns:other=\"urn:x\">1</other:priority>")),
              HasSubstr("unknown element 'priority' in namespace 'urn:x'"));
}

TEST(Metadata, UnknownKeyIsNamedWithAHint) {
  std::string message = keyError("maintenance_acton", "suspend");
  EXPECT_THAT(message, HasSubstr("maintenance_acton: unknown key"));
  EXPECT_THAT(message, HasSubstr("did you mean 'maintenance_action'"));
}

TEST(Metadata, DuplicateKeyIsRejected) {
  std::string xml = policyXml(element("priority", "1") + element("priority", "2"));
  EXPECT_EQ(applyError(xml), "priority: set more than once");
}

TEST(Metadata, MalformedXmlIsRejected) {
  EXPECT_THAT(applyError(policyXml("<hostmaint:priority>1</hostmaint:prio>")),
              HasSubstr("not well-formed XML"));
  EXPECT_THAT(applyError("<hostmaint:policy"), HasSubstr("not well-formed XML"));
  EXPECT_THAT(applyError(policyXml(element("priority", "1")) + policyXml("")),
              HasSubstr("more than one root element"));
}

TEST(Metadata, StructureInsideAKeyIsRejected) {
  EXPECT_THAT(applyError(policyXml(element("group", "<hostmaint:x/>"))),
              HasSubstr("group: expected a text value"));
  EXPECT_THAT(applyError(policyXml("stray" + element("priority", "1"))),
              HasSubstr("unexpected text 'stray'"));
  EXPECT_THAT(applyError(policyXml("<hostmaint:priority unit=\"x\">1</hostmaint:priority>")),
              HasSubstr("priority: unexpected attribute 'unit'"));
}

TEST(Metadata, MigrationTuningKeysAreApplied) {
  const DomainPolicy policy = applyOk(policyXml(
      element("migration_max_downtime", "1s500ms") + element("migration_downtime_steps", "4") +
      element("migration_downtime_step_delay", "20s") +
      element("migration_bandwidth_mib_s", "100") + element("migration_auto_converge", "true") +
      element("migration_post_copy", "yes") +
      element("migration_completion_timeout_per_gib", "5m") +
      element("migration_progress_timeout", "0s") +
      element("migration_parallel_connections", "4")));
  EXPECT_EQ(policy.migration_max_downtime, 1500ms);
  EXPECT_EQ(policy.migration_downtime_steps, 4u);
  EXPECT_EQ(policy.migration_downtime_step_delay, 20s);
  EXPECT_EQ(policy.migration_bandwidth_mib_s, 100u);
  EXPECT_TRUE(policy.migration_auto_converge);
  EXPECT_TRUE(policy.migration_post_copy);
  EXPECT_EQ(policy.migration_completion_timeout_per_gib, 300s);
  EXPECT_EQ(policy.migration_progress_timeout, 0s);
  EXPECT_EQ(policy.migration_parallel_connections, 4u);
}

TEST(Metadata, DowntimeNeedsAUnitAndStaysInRange) {
  // A bare number means milliseconds to Nova and seconds elsewhere here.
  EXPECT_THAT(keyError("migration_max_downtime", "500"), HasSubstr("write 500ms or 500s"));
  EXPECT_THAT(keyError("migration_max_downtime", "50ms"), HasSubstr("between 100ms and 10m"));
  EXPECT_THAT(keyError("migration_max_downtime", "fast"), HasSubstr("not a duration"));
  EXPECT_THAT(keyError("migration_downtime_step_delay", "0s"), HasSubstr("between 1s"));
  EXPECT_THAT(keyError("migration_parallel_connections", "256"), HasSubstr("256"));
}

TEST(Duration, WholeSecondKeysRefuseMilliseconds) {
  EXPECT_EQ(parseDuration("2000ms"), 2s);
  EXPECT_EQ(parseDuration("1500ms"), std::nullopt);
}

TEST(Validate, MigrationTuningOutOfRangeIsNamed) {
  DomainPolicy policy;
  policy.migration_max_downtime = 20ms;
  EXPECT_THAT(validatePolicy(policy).value_or(""), HasSubstr("migration_max_downtime"));
  policy = {};
  policy.migration_bandwidth_mib_s = std::uint64_t{1} << 40;
  EXPECT_THAT(validatePolicy(policy).value_or(""), HasSubstr("migration_bandwidth_mib_s"));
}

TEST(Metadata, CommentsAreIgnored) {
  EXPECT_EQ(applyOk(policyXml("<!-- db tier -->" + element("priority", "2"))).priority, 2);
}

}  // namespace
}  // namespace hostmaint::agent
