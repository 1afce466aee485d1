"""A small node-tree builder: nodes placed left to right, inputs fed with a socket (linked) or a value (set)."""

from __future__ import annotations

import bpy


def by_identifier(sockets, identifier):
    """Sockets by identifier: names repeat (Mix) or hide unavailable sockets (Vector Rotate)."""
    return next(s for s in sockets if s.identifier == identifier)


class Builder:
    """Adds nodes to one tree; every method returns the output socket a caller links on."""

    def __init__(self, tree):
        self.tree, self.nodes, self.links = tree, tree.nodes, tree.links
        self._x = 0

    def node(self, idname, **props):
        node = self.nodes.new(idname)
        for key, value in props.items():
            setattr(node, key, value)
        node.location = (self._x, 0)
        self._x += 200
        return node

    def feed(self, socket, value):
        if isinstance(value, bpy.types.NodeSocket):
            self.links.new(value, socket)
        elif value is not None:
            socket.default_value = value

    def math(self, op, a, b=None, c=None, clamp=False):
        node = self.node("ShaderNodeMath", operation=op, use_clamp=clamp)
        for socket, value in zip(node.inputs, (a, b, c)):
            self.feed(socket, value)
        return node.outputs[0]

    def vmath(self, op, a, b=None, c=None, scale=None, output="Vector"):
        node = self.node("ShaderNodeVectorMath", operation=op)
        for socket, value in zip(node.inputs, (a, b, c, scale)):
            self.feed(socket, value)
        return node.outputs[output]

    def node_output(self, idname, value, output):
        """A one-input node fed with ``value``; returns its output ``output``."""
        node = self.node(idname)
        self.feed(node.inputs[0], value)
        return node.outputs[output]

    def combine(self, x, y, z):
        node = self.node("ShaderNodeCombineXYZ")
        for socket, value in zip(node.inputs, (x, y, z)):
            self.feed(socket, value)
        return node.outputs[0]

    def mix(self, data_type, factor, a, b):
        """Mix node: a + factor * (b - a), factor unclamped; data_type 'FLOAT' or 'VECTOR'."""
        node = self.node("ShaderNodeMix", data_type=data_type, clamp_factor=False)
        kind = data_type.title()
        for identifier, value in (("Factor_Float", factor), (f"A_{kind}", a), (f"B_{kind}", b)):
            self.feed(by_identifier(node.inputs, identifier), value)
        return by_identifier(node.outputs, f"Result_{kind}")

    def group(self, tree):
        node = self.node("ShaderNodeGroup")
        node.node_tree = tree
        return node

    def io(self):
        return self.node("NodeGroupInput"), self.node("NodeGroupOutput")
