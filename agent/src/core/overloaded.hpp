// Overloaded{lambdas...}: one visitor for std::visit from several lambdas.
#pragma once

namespace hostmaint::agent {

template <typename... Lambdas>
struct Overloaded : Lambdas... {
  using Lambdas::operator()...;
};
template <typename... Lambdas>
Overloaded(Lambdas...) -> Overloaded<Lambdas...>;

}  // namespace hostmaint::agent
