// Test fixture: a shared library without a FEDTRAIN_PLUGIN block.
extern "C" int some_unrelated_function() { return 42; }
