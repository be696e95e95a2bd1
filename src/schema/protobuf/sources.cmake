# kc_schema_protobuf: Protobuf schemas (.proto text or base64 descriptors) and
# dynamic decoding to protobuf's JSON mapping. Debian's libprotobuf/libprotoc
# through CMake's FindProtobuf, GLOBAL so the tests and fuzz targets (other
# directories) see protobuf::libprotobuf too. Imported targets carry their
# include directories as SYSTEM, so protobuf's headers do not trip -Werror.
find_package(Protobuf REQUIRED GLOBAL)
add_library(kc_schema_protobuf STATIC ${CMAKE_CURRENT_LIST_DIR}/protobuf.cpp)
target_include_directories(kc_schema_protobuf PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(kc_schema_protobuf
  PUBLIC kc_base
  PRIVATE kc::warnings kc::sanitizers protobuf::libprotobuf protobuf::libprotoc)
