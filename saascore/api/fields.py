"""Serializer fields the API's inputs share."""

from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """A JSON string, not a number or boolean coerced into one: the schema says ``string``, and a
    client that sends ``{"source": 0}`` has a bug it should hear about (400), not a silent ``"0"``."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)
