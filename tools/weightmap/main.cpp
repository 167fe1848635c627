#include <iostream>

int main() {
  std::cout << "weightmap\n";
  return 0;
}
