"""shoal.api's enum wrappers hold their values as plain attributes (the control loops' hot path)."""

from shoal.api import NodeRole, TaskState, types_pb2


def test_enum_values_are_plain_attributes_with_the_generated_numbers() -> None:
    for wrapper in (TaskState, NodeRole):
        for name, number in wrapper.items():
            assert vars(wrapper)[name] == number == getattr(types_pb2, name)
    assert TaskState.Name(TaskState.RUNNING) == "RUNNING"
