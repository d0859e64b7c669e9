/* lr_schedule.c: the paper's schedule experiment with momentum SGD, what `make demo` runs:
 * a learning rate and a momentum per step and per layer-and-kind (1600 numbers) and 8 init
 * scales of a 784-50-50-50-10 tanh MLP on Fashion-MNIST (schedule_experiment.h).
 *
 *   lr_schedule [--quick] [--out DIR] [--data DIR] [--iterations N] [--threads N] */
#include "schedule_experiment.h"

int main(int argc, char **argv)
{
    return schedule_experiment(argc, argv, "lr_schedule", REVL_OPTIM_MOMENTUM);
}
