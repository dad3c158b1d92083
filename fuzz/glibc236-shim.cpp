// What Jazzer.js's prebuilt addon needs from glibc 2.38 and GCC 13's libstdc++ and Debian 12 lacks
// (fuzz/glibc236-patch.py). libFuzzer reads its decimal flags with the strtol pair: C23's only change,
// accepting a 0b prefix, never applies. Including <iostream> here initialises the standard streams,
// which is all ios_base_library_init stands for.
#include <cstdlib>
#include <iostream>

extern "C" long __isoc23_strtol(const char *s, char **end, int base) { return std::strtol(s, end, base); }
extern "C" unsigned long __isoc23_strtoul(const char *s, char **end, int base) {
  return std::strtoul(s, end, base);
}
namespace std {
void ios_base_library_init() {}
}
