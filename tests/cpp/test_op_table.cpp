// The op table (src/backend/ops.def) against its implementations and tests: every op needs a
// CPU twin and at least one registered test case (tests/cpp/op_cases_*.cpp); in a CUDA build,
// also a CUDA twin. Case names must be unique and name a known op.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "backend/op_table.h"
#include "op_case.h"

namespace frt::test {
namespace {

TEST(OpTable, ListsEveryOpOfOpsDefOnce) {
  std::set<std::string> names;
  for (const OpInfo& op : op_table()) {
    EXPECT_TRUE(names.insert(op.name).second) << "duplicate op " << op.name;
    EXPECT_GT(std::string(op.contract).size(), 5u) << op.name << " has no contract";
  }
  EXPECT_EQ(names.size(), 17u) << "ops.def changed: update this count with the Backend interface";
  EXPECT_NE(find_op("attention"), nullptr);
  EXPECT_EQ(find_op("no_such_op"), nullptr);
}

TEST(OpTable, EveryOpHasCpuTwin) {
  for (const OpInfo& op : op_table()) EXPECT_TRUE(op.has_cpu) << op.name << " lacks a CPU twin";
}

TEST(OpTable, EveryOpHasTestCase) {
  const auto& registry = op_case_registry();
  for (const OpInfo& op : op_table()) {
    auto it = registry.find(op.name);
    EXPECT_TRUE(it != registry.end() && !it->second.empty())
        << op.name << " has no registered test case (add one in tests/cpp/op_cases_*.cpp)";
  }
}

TEST(OpTable, CasesNameKnownOpsUniquely) {
  std::set<std::string> seen;
  for (const OpCase& c : all_op_cases()) {
    EXPECT_NE(find_op(c.op), nullptr) << "case " << c.name << " for unknown op " << c.op;
    EXPECT_TRUE(seen.insert(gtest_name(c.name)).second) << "duplicate case name " << c.name;
  }
}

#ifdef FLASHRT_WITH_CUDA
TEST(OpTable, EveryOpHasCudaTwin) {
  for (const OpInfo& op : op_table())
    EXPECT_TRUE(op.has_cuda) << op.name << " lacks a CUDA twin (cuda_op_implemented)";
}
#else
TEST(OpTable, NoCudaTwinsWithoutCuda) {
  for (const OpInfo& op : op_table()) EXPECT_FALSE(op.has_cuda) << op.name;
}
#endif

}  // namespace
}  // namespace frt::test
