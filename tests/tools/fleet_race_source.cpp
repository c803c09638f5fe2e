// A source of migrations to one fleet peer, for tests/integration/test_fleet.py:
// the daemon's own FleetLink (agent/src/service/fleet_link.cpp), driven the way
// the engine drives it, with no hypervisor (libvirt's test driver cannot
// migrate). It holds a slot, then over and over: a domain waits until
// mayMigrateToPeer() grants it a claim on the peer's incoming slots, "migrates"
// for --hold-ms, and is done (the claim given back). Two of these racing for a
// peer whose max_incoming_migrations is 1 show the limit enforced across
// sources.
//
//   fleet_race_source --endpoints URL[,URL...] --fleet NAME --host NAME
//                     --peer-uri URI --seconds N --hold-ms N [--lease-ttl N]
//
// Prints one JSON line per event ({"event": "claimed"|"refused"|"done", ...})
// and, at the end, {"event": "summary", "claimed": N, "refused": N}.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "hostmaint/agent/config.hpp"
#include "hostmaint/agent/model.hpp"
#include "hostmaint/agent/service/fleet_link.hpp"

namespace {

namespace agent = hostmaint::agent;
namespace service = hostmaint::service;
using namespace std::chrono_literals;

std::map<std::string, std::string> parseArgs(int argc, char** argv) {
  std::map<std::string, std::string> args;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string key = argv[i];
    if (!key.starts_with("--")) throw std::invalid_argument("expected --option, got " + key);
    args[key.substr(2)] = argv[i + 1];
  }
  for (const char* needed : {"endpoints", "fleet", "host", "peer-uri", "seconds", "hold-ms"}) {
    if (!args.contains(needed)) throw std::invalid_argument(std::string("--") + needed + " is required");
  }
  return args;
}

void emit(const nlohmann::json& event) { std::cout << event.dump() << std::endl; }

class Source {
 public:
  Source(boost::asio::io_context& io, const std::map<std::string, std::string>& args)
      : io_(io),
        host_(args.at("host")),
        peer_uri_(args.at("peer-uri")),
        hold_(std::stoi(args.at("hold-ms"))),
        end_(std::chrono::steady_clock::now() + std::chrono::seconds(std::stoi(args.at("seconds")))),
        timer_(io) {
    agent::FleetConfig config;
    std::stringstream endpoints(args.at("endpoints"));
    for (std::string endpoint; std::getline(endpoints, endpoint, ',');)
      config.endpoints.push_back(endpoint);
    config.name = args.at("fleet");
    config.host = host_;
    config.max_concurrent = 8;
    config.lease_ttl = std::chrono::seconds(args.contains("lease-ttl") ? std::stoi(args.at("lease-ttl")) : 4);
    config.poll_interval = 50ms;
    config.connect_timeout = 500ms;
    config.request_timeout = 1s;
    service::FleetLocal local;
    local.command_file = "/nonexistent/fleet-race-source-command.json";
    local.meminfo = "/nonexistent";
    link_.emplace(io_, config, host_, clock_, service::FleetHooks{}, std::move(local));
    status_.host = host_;
    status_.phase = agent::HostPhase::draining;
    status_.session_id = "race-" + host_;
    status_.window = agent::MaintenanceWindow{clock_.now(), clock_.now() + 1h, false, "race"};
    nextDomain();
  }

  void run() { tick(); }
  unsigned claimed() const { return claimed_; }
  unsigned refused() const { return refused_; }

 private:
  agent::DomainStatus& domain() { return status_.domains.back(); }

  void nextDomain() {
    ++serial_;
    agent::DomainStatus domain;
    domain.uuid = host_ + "-" + std::to_string(serial_);
    domain.name = "vm-" + host_ + "-" + std::to_string(serial_);
    domain.stage = agent::DomainStage::waiting;
    status_.domains = {domain};
    offer();
  }

  void offer() {
    ++status_.generation;
    status_.updated_at = clock_.now();
    link_->offerStatus(status_);
  }

  void tick() {
    const auto now = std::chrono::steady_clock::now();
    if (now >= end_ && domain().stage != agent::DomainStage::acting) {
      // Done: idle, the slot (and any claim on its lease) given back.
      status_.domains.clear();
      status_.phase = agent::HostPhase::idle;
      status_.session_id.reset();
      status_.window.reset();
      offer();
      return;  // the io_context runs out of work once the link is gone
    }
    if (domain().stage == agent::DomainStage::acting) {
      if (now >= acting_until_) {
        domain().stage = agent::DomainStage::done;
        offer();
        emit({{"event", "done"}, {"host", host_}, {"domain", domain().name}});
        nextDomain();
      }
    } else if (link_->mayDrain(status_.session_id.value_or(""))) {
      const auto why = link_->mayMigrateToPeer(
          agent::PeerMigration{domain().uuid, domain().name, peer_uri_});
      if (!why) {
        ++claimed_;
        emit({{"event", "claimed"}, {"host", host_}, {"domain", domain().name}});
        domain().stage = agent::DomainStage::acting;
        domain().destination = peer_uri_;
        acting_until_ = now + hold_;
        offer();
      } else if (*why != last_why_) {
        last_why_ = *why;
        if (why->find("incoming migrations") != std::string::npos) ++refused_;
        emit({{"event", "refused"}, {"host", host_}, {"domain", domain().name}, {"why", *why}});
      }
    }
    timer_.expires_after(10ms);
    timer_.async_wait([this](const boost::system::error_code& error) {
      if (!error) tick();
    });
  }

  boost::asio::io_context& io_;
  const std::string host_;
  const std::string peer_uri_;
  const std::chrono::milliseconds hold_;
  const std::chrono::steady_clock::time_point end_;
  agent::SystemWallClock clock_;
  boost::asio::steady_timer timer_;
  std::optional<service::FleetLink> link_;
  agent::HostStatus status_;
  unsigned serial_ = 0;
  std::chrono::steady_clock::time_point acting_until_{};
  std::string last_why_;
  unsigned claimed_ = 0;
  unsigned refused_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  try {
    const auto args = parseArgs(argc, argv);
    boost::asio::io_context io;
    Source source(io, args);
    source.run();
    // The link's worker posts its reports forever: run until the source is
    // done, then give the last status a round to release its claim.
    const auto seconds = std::chrono::seconds(std::stoi(args.at("seconds")));
    io.run_for(seconds + std::chrono::milliseconds(std::stoi(args.at("hold-ms"))) + 1s);
    emit({{"event", "summary"}, {"host", args.at("host")}, {"claimed", source.claimed()},
          {"refused", source.refused()}});
    return 0;
  } catch (const std::exception& error) {
    std::cerr << "fleet_race_source: " << error.what() << std::endl;
    return 2;
  }
}
