// The built-in training corpus of train_tiny_tokenizer(): robot-task sentences (LIBERO task
// names plus template sentences) and the pieces of openpi's prompt formats ("Task: ",
// ", State: ", ";\nAction: ", the state bins -1..255), so that a tiny synthetic checkpoint's
// tokenizer turns real-looking prompts into few, whole-word tokens. Deterministic: no clock,
// no std::random (its distributions differ between standard libraries), only a fixed LCG.
// Tests: tests/cpp/test_tokenizer.cpp (TinyTokenizer.*).
#include <cstdint>
#include <string>
#include <vector>

#include "io/tokenizer.h"

namespace frt::detail {
namespace {

// Task names of the four LIBERO suites (spatial, object, goal, 10): the prompts a pi05 LIBERO
// policy sees, so the tiny tokenizer learns their words.
const char* const kLiberoTasks[] = {
    "pick up the black bowl between the plate and the ramekin and place it on the plate",
    "pick up the black bowl next to the ramekin and place it on the plate",
    "pick up the black bowl from table center and place it on the plate",
    "pick up the black bowl on the cookie box and place it on the plate",
    "pick up the black bowl in the top drawer of the wooden cabinet and place it on the plate",
    "pick up the black bowl on the ramekin and place it on the plate",
    "pick up the black bowl next to the cookie box and place it on the plate",
    "pick up the black bowl on the stove and place it on the plate",
    "pick up the black bowl next to the plate and place it on the plate",
    "pick up the black bowl on the wooden cabinet and place it on the plate",
    "pick up the alphabet soup and place it in the basket",
    "pick up the cream cheese and place it in the basket",
    "pick up the salad dressing and place it in the basket",
    "pick up the bbq sauce and place it in the basket",
    "pick up the ketchup and place it in the basket",
    "pick up the tomato sauce and place it in the basket",
    "pick up the butter and place it in the basket",
    "pick up the milk and place it in the basket",
    "pick up the chocolate pudding and place it in the basket",
    "pick up the orange juice and place it in the basket",
    "open the middle drawer of the cabinet",
    "put the bowl on the stove",
    "put the wine bottle on top of the cabinet",
    "open the top drawer and put the bowl inside",
    "put the bowl on top of the cabinet",
    "push the plate to the front of the stove",
    "put the cream cheese in the bowl",
    "turn on the stove",
    "put the bowl on the plate",
    "put the wine bottle on the rack",
    "put both the alphabet soup and the tomato sauce in the basket",
    "put both the cream cheese box and the butter in the basket",
    "turn on the stove and put the moka pot on it",
    "put the black bowl in the bottom drawer of the cabinet and close it",
    "put the white mug on the left plate and put the yellow and white mug on the right plate",
    "pick up the book and place it in the back compartment of the caddy",
    "put the white mug on the plate and put the chocolate pudding to the right of the plate",
    "put both the alphabet soup and the cream cheese box in the basket",
    "put both moka pots on the stove",
    "put the yellow and white mug in the microwave and close it",
};

const char* const kVerbs[] = {"pick up", "grasp", "lift",  "move", "push",  "pull",      "slide",
                              "rotate",  "stack", "place", "put",  "carry", "hand over", "drop"};
const char* const kColors[] = {"red",    "green",  "blue", "yellow", "black", "white",
                               "orange", "purple", "pink", "brown",  "gray",  "silver"};
const char* const kObjects[] = {"block",  "cube",   "bowl",   "cup",   "mug",  "plate",
                                "bottle", "sponge", "towel",  "spoon", "fork", "knife",
                                "banana", "apple",  "carrot", "can",   "box",  "marker",
                                "lid",    "pan",    "pot",    "toy"};
const char* const kPlaces[] = {"in the bowl",
                               "on the plate",
                               "in the basket",
                               "in the drawer",
                               "on the shelf",
                               "on the left side of the table",
                               "on the right side of the table",
                               "next to the sink",
                               "in the microwave",
                               "on top of the cabinet",
                               "into the box",
                               "behind the cup",
                               "in front of the robot",
                               "on the tray"};
const char* const kSingles[] = {
    "open the top drawer",
    "close the bottom drawer",
    "open the microwave door",
    "close the fridge",
    "turn off the faucet",
    "turn on the light",
    "fold the towel",
    "wipe the table with the sponge",
    "press the red button",
    "unplug the charger",
    "pour the water into the glass",
    "flip the pancake",
    "clean up the table",
    "sort the blocks by color",
    "hang the towel on the rack",
    "insert the peg into the hole",
    "do something useful",
    "stop",
    "go home",
    "wait for the next instruction",
};

// A 64-bit LCG (Knuth's MMIX constants): identical on every platform and compiler.
struct Lcg {
  uint64_t s;
  uint32_t next() {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(s >> 33);
  }
  template <size_t N>
  const char* pick(const char* const (&a)[N]) {
    return a[next() % N];
  }
};

std::string state_bins(Lcg& rng, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    if (i) s += ' ';
    s += std::to_string(static_cast<int>(rng.next() % 257) - 1);  // -1 .. 255
  }
  return s;
}

}  // namespace

std::vector<std::string> tiny_tokenizer_corpus() {
  std::vector<std::string> out;
  Lcg rng{20240611};
  std::vector<std::string> tasks(std::begin(kLiberoTasks), std::end(kLiberoTasks));
  tasks.insert(tasks.end(), std::begin(kSingles), std::end(kSingles));
  for (int i = 0; i < 240; ++i) {
    std::string t = std::string(rng.pick(kVerbs)) + " the " + rng.pick(kColors) + " " +
                    rng.pick(kObjects) + " and place it " + rng.pick(kPlaces);
    tasks.push_back(std::move(t));
  }
  // Each task as plain text (pi0 format: the prompt then "\n") and in the pi05 state format.
  for (size_t i = 0; i < tasks.size(); ++i) {
    out.push_back(tasks[i] + "\n");
    out.push_back("Task: " + tasks[i] + ", State: " + state_bins(rng, 8) + ";\nAction: ");
  }
  // Every bin value at least once, in order, and a few capitalised sentences.
  std::string all_bins;
  for (int b = -1; b <= 255; ++b) all_bins += (b == -1 ? "" : " ") + std::to_string(b);
  out.push_back(all_bins);
  out.push_back("Pick up the red block and put it in the bowl.");
  out.push_back("Put the cup on the plate, then open the drawer.");
  return out;
}

}  // namespace frt::detail
