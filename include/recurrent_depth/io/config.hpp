#pragma once
#include "../model/config.hpp"
