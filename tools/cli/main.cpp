#include <iostream>

#include "cli/cli.hpp"

int main(int argc, char** argv) {
  return weightmap::cli::run_cli(argc, argv, std::cout, std::cerr);
}
