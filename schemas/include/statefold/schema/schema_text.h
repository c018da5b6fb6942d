// The text of schemas/events.fbs as this build compiled it: the JSON form of an event is parsed against it.
#pragma once

namespace statefold::schema {
extern const char* const kEventsFbs;
}
