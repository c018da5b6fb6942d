// Kept so that existing includes still build: base::append_json_string now lives in the one JSON writer,
// base/json_writer.h. Include that instead.
#pragma once

#include "engine/base/json_writer.h"
