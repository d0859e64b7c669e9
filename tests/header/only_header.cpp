// only_header.cpp: revl.h compiles on its own as C++11 with -Wall -Wextra -Werror -pedantic
// (make check-header), with C linkage for every entry point.
#include "revl.h"

#include <cstddef>
#include <type_traits>

static_assert(offsetof(revl_trainer_options, struct_size) == 0, "struct_size first");
static_assert(offsetof(revl_hyperopt_options, struct_size) == 0, "struct_size first");
static_assert(std::is_standard_layout<revl_model_def>::value, "C layout");
static_assert(std::is_trivial<revl_mlp_options>::value, "plain C struct");
static_assert(REVL_VERSION_NUMBER == REVL_VERSION_MAJOR * 10000 + REVL_VERSION_MINOR * 100 +
                                         REVL_VERSION_PATCH,
              "version macros disagree");

// A callback with the exact typedef'd signature, as a C++ user would write it.
extern "C" int header_test_grad(size_t, const double *, const double *, double *, double *, void *);
extern "C" int header_test_grad(size_t, const double *, const double *, double *g, double *,
                                void *)
{
    g[0] = 0;
    return 0;
}

int revl_header_test_cpp();
int revl_header_test_cpp()
{
    revl_model_def d;
    d.grad = header_test_grad;
    revl_status s = REVL_ERR_INVALID;
    int (*create)(revl_model **, const revl_model_def *) = revl_model_create;
    return (create != nullptr) + (s != REVL_OK) + (d.grad != nullptr);
}
