// The shared library libflashrt.so is the static core linked whole (see CMakeLists.txt); the
// exported symbols are the FRT_API functions of c_api.cpp. CMake needs one source of its own here.
